"""Load Kubernetes manifests and pull out the pod (metadata + spec) each object would run.

A PATH is a file or a folder searched recursively for `*.yaml`, `*.yml` and `*.json`.
YAML files may hold several documents; `List` objects (and typed lists such as `PodList`)
are flattened. Pods and every kind with a pod template yield a `LoadedObject`; other kinds
are returned as `SkippedObject`s. A file that cannot be read or parsed, or a document that
is not a Kubernetes object, raises `InputError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from tracer.errors import InputError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

# Where each kind keeps its pod template (metadata + spec), as a path of keys.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
}


@dataclass(frozen=True)
class LoadedObject:
    source: str
    kind: str
    namespace: str | None
    name: str
    pod_metadata: dict = field(repr=False)
    pod_spec: dict = field(repr=False)


@dataclass(frozen=True)
class SkippedObject:
    source: str
    kind: str
    namespace: str | None
    name: str


@dataclass
class LoadResult:
    objects: list[LoadedObject] = field(default_factory=list)
    skipped: list[SkippedObject] = field(default_factory=list)


def load_objects(paths: Iterable[str | os.PathLike]) -> list[LoadedObject]:
    """Every pod-bearing object under `paths`, in file order."""
    return load_manifests(paths).objects


def load_manifests(paths: Iterable[str | os.PathLike]) -> LoadResult:
    """Pod-bearing objects and the objects skipped because they run no pod."""
    result = LoadResult()
    for file in manifest_files(paths):
        for obj in _objects_in(file):
            _classify(file, obj, result)
    return result


def manifest_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            if not found:
                raise InputError(path, "folder holds no *.yaml, *.yml or *.json file")
            yield from found
        elif path.exists():
            yield path
        else:
            raise InputError(path, "no such file or directory")


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(file, "not UTF-8 text") from None
    except OSError as err:
        raise InputError(file, f"cannot read: {err.strerror or err}") from None


def _documents(file: Path) -> list:
    text = _read_text(file)
    if file.suffix == ".json":
        try:
            return [orjson.loads(text)]
        except orjson.JSONDecodeError as err:
            raise InputError(file, f"invalid JSON: {err}") from None
    try:
        return list(YAML(typ="safe", pure=True).load_all(text))
    except YAMLError as err:
        raise InputError(file, f"invalid YAML: {_one_line(err)}") from None


def _one_line(err: YAMLError) -> str:
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def _objects_in(file: Path) -> Iterator[dict]:
    for number, document in enumerate(_documents(file), start=1):
        if document is None:  # an empty document, e.g. after a trailing `---`
            continue
        yield from _flatten(file, document, f"document {number}")


def _flatten(file: Path, document, where: str) -> Iterator[dict]:
    if not isinstance(document, dict):
        raise InputError(file, f"{where} is a {type(document).__name__}, not a Kubernetes object")
    kind = document.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InputError(file, f"{where} has no kind")
    if kind.endswith("List") and isinstance(document.get("items"), list):
        item_kind = kind[: -len("List")]  # PodList items may omit their kind
        for index, item in enumerate(document["items"]):
            if isinstance(item, dict) and item_kind and "kind" not in item:
                item = {**item, "kind": item_kind}
            yield from _flatten(file, item, f"{where} item {index}")
        return
    yield document


def _classify(file: Path, obj: dict, result: LoadResult) -> None:
    kind = obj["kind"]
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    namespace = metadata.get("namespace")
    name = str(metadata.get("name", ""))
    if kind == "Pod":
        pod = obj
    elif kind in POD_TEMPLATE_PATHS:
        pod = _pod_template(file, obj, kind, name)
    else:
        result.skipped.append(SkippedObject(str(file), kind, namespace, name))
        return
    pod_metadata, pod_spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if not isinstance(pod_metadata, dict) or not isinstance(pod_spec, dict):
        raise InputError(file, f"{kind}/{name}: pod metadata and spec must be mappings")
    result.objects.append(LoadedObject(str(file), kind, namespace, name, pod_metadata, pod_spec))


def _pod_template(file: Path, obj: dict, kind: str, name: str) -> dict:
    template = obj
    for key in POD_TEMPLATE_PATHS[kind]:
        template = template.get(key) if isinstance(template, dict) else None
    if not isinstance(template, dict):
        raise InputError(file, f"{kind}/{name}: {'.'.join(POD_TEMPLATE_PATHS[kind])} is missing or not a mapping")
    return template
