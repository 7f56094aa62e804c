"""Load Kubernetes manifests and pull out the pod (metadata + spec) each object would run.

A PATH is a file or a folder searched recursively for `*.yaml`, `*.yml` and `*.json`.
YAML files may hold several documents; `List` objects (and typed lists such as `PodList`)
are flattened. Pods and every kind with a pod template yield a `LoadedObject`; other kinds
are returned as `SkippedObject`s.

Files are read as Kubernetes reads them (`yaml11`: YAML 1.1 scalars, bounded size, depth and
alias expansion), and every field the Pod Security checks read is checked against its API
type (`shapes`) before anything is judged. Kinds are matched exactly, as the API does
(`pod` is not `Pod`). A pod or pod template must have a spec and a containers list. Any
problem, and a file that holds no object at all, raises `InputError` naming the file, the
document and the JSON path of the field: input that cannot be judged is never "allowed".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tracer.errors import InputError
from tracer.kube import shapes, yaml11
from tracer.kube.pod_schema import API_KINDS

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
POD_KINDS = ("Pod", *POD_TEMPLATE_PATHS)

# The apiVersions that serve each pod-bearing kind (current ones first, then removed betas,
# still met in old manifests).
API_VERSIONS: dict[str, tuple[str, ...]] = {
    "Pod": ("v1",),
    "PodTemplate": ("v1",),
    "ReplicationController": ("v1",),
    "Deployment": ("apps/v1", "apps/v1beta1", "apps/v1beta2", "extensions/v1beta1"),
    "StatefulSet": ("apps/v1", "apps/v1beta1", "apps/v1beta2"),
    "DaemonSet": ("apps/v1", "apps/v1beta2", "extensions/v1beta1"),
    "ReplicaSet": ("apps/v1", "apps/v1beta2", "extensions/v1beta1"),
    "Job": ("batch/v1",),
    "CronJob": ("batch/v1", "batch/v1beta1", "batch/v2alpha1"),
}
# A kind is a Go type name or a CRD's kind (a DNS-1035 label once lower-cased).
_KIND_NAME = re.compile(r"^[A-Za-z]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$")
# apiVersion: [group/]version, a DNS-1123 subdomain and a DNS-1035 label.
_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_API_VERSION = re.compile(rf"^({_LABEL}(\.{_LABEL})*/)?[a-z]([-a-z0-9]*[a-z0-9])?$")
_KNOWN_KINDS = {kind.lower(): kind for kind in (*POD_KINDS, "List", *(k + "List" for k in POD_KINDS))}


@dataclass(frozen=True)
class LoadedObject:
    source: str
    kind: str
    namespace: str | None
    name: str
    pod_metadata: dict = field(repr=False)
    pod_spec: dict = field(repr=False)
    document: int = 0  # 1-based document number in its file
    location: tuple = ()  # keys from the document root to the object, e.g. ("items", 0)
    template: tuple = ()  # keys from the object to its pod template; () for a Pod


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
        classify_documents(str(file), read_documents(file), result)
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


def read_documents(file: Path) -> list[yaml11.Document]:
    text = yaml11.read_text(file)
    if file.suffix == ".json":
        return yaml11.load_json(text, file)
    return yaml11.load_yaml(text, file)


def classify_documents(source: str, documents: list[yaml11.Document], result: LoadResult) -> None:
    """Add the objects of one file's documents to `result`; a file without any is an error."""
    before = len(result.objects) + len(result.skipped)
    for document in documents:
        if document.value is None:  # an empty document, e.g. after a trailing `---`
            continue
        for location, obj in _flatten(source, document.number, document.value, ()):
            _classify(source, document.number, location, obj, result)
    if len(result.objects) + len(result.skipped) == before:
        raise InputError(source, "holds no Kubernetes object (it is empty, only comments, or empty lists)")


def path_text(keys: Iterable) -> str:
    """("items", 0, "spec") -> "items[0].spec"."""
    text = ""
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def _where(number: int, location: tuple) -> str:
    return f"document {number}" + (f": {path_text(location)}" if location else "")


def _error(source: str, number: int, location: tuple, problem: str) -> InputError:
    return InputError(source, f"{_where(number, location)}{problem}")


def _flatten(source: str, number: int, document, location: tuple) -> Iterator[tuple[tuple, dict]]:
    if not isinstance(document, dict):
        raise _error(source, number, location, f" is a {type(document).__name__}, not a Kubernetes object")
    kind = document.get("kind")
    if kind is None or kind == "":
        raise _error(source, number, location, " has no kind")
    if not isinstance(kind, str):
        raise _error(source, number, location + ("kind",), f": expected string, got {shapes.json_type(kind)}")
    canonical = _KNOWN_KINDS.get(kind.strip().lower())
    if canonical is not None and canonical != kind:
        raise _error(
            source,
            number,
            location + ("kind",),
            f": {kind!r} is not a Kubernetes kind (kinds are case-sensitive: {canonical!r})",
        )
    if not _KIND_NAME.match(kind):
        raise _error(source, number, location + ("kind",), f": {kind!r} is not a valid kind name")
    api_version = document.get("apiVersion")
    if api_version is not None and not isinstance(api_version, str):
        raise _error(
            source, number, location + ("apiVersion",), f": expected string, got {shapes.json_type(api_version)}"
        )
    if api_version is not None and not _API_VERSION.match(api_version):
        raise _error(source, number, location + ("apiVersion",), f": {api_version!r} is not a valid apiVersion")
    if api_version in API_KINDS and kind not in API_KINDS[api_version]:
        raise _error(
            source,
            number,
            location + ("kind",),
            f": apiVersion {api_version} has no kind {kind!r} (kubectl: no matches for kind)",
        )
    if kind == "List" or kind.endswith("List"):
        items = document.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            raise _error(source, number, location + ("items",), f": expected array, got {shapes.json_type(items)}")
        item_kind = kind[: -len("List")]  # PodList items may omit their kind
        for index, item in enumerate(items):
            where = location + ("items", index)
            if isinstance(item, dict) and item_kind and item.get("kind") is None:
                item = {**item, "kind": item_kind}
            elif isinstance(item, dict) and item_kind and item.get("kind") != item_kind:
                raise _error(
                    source, number, where + ("kind",), f": {item.get('kind')!r} in a {kind} (items are {item_kind}s)"
                )
            yield from _flatten(source, number, item, where)
        return
    yield location, document


def _served(kind: str, api_version) -> bool | None:
    """True: the pod-bearing `kind` at this apiVersion; False: another group's kind of the same
    name (a custom resource); None: a built-in group that does not serve it (an error)."""
    if api_version is None or api_version in API_VERSIONS[kind]:
        return True
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    if "." not in group or group.endswith(".k8s.io"):
        return None
    return False


def _classify(source: str, number: int, location: tuple, obj: dict, result: LoadResult) -> None:
    def fail(keys: tuple, problem: str) -> InputError:
        return _error(source, number, location + keys, problem)

    kind, api_version = obj["kind"], obj.get("apiVersion")
    metadata = obj.get("metadata")
    prefix = path_text(location)
    try:
        shapes.check_object(metadata, "ObjectMeta", shapes.join(prefix, "metadata"))
    except shapes.ShapeError as err:
        raise InputError(source, f"document {number}: {err}") from None
    metadata = metadata or {}
    namespace, name = metadata.get("namespace"), metadata.get("name") or ""
    served = _served(kind, api_version) if kind in POD_KINDS else False
    if served is None:
        raise fail(
            ("apiVersion",),
            f": {api_version} does not serve kind {kind} (it is served by {', '.join(API_VERSIONS[kind])})",
        )
    if not served:
        result.skipped.append(SkippedObject(source, kind, namespace, name))
        return
    try:
        shapes.check_object(obj, kind, prefix)
    except shapes.ShapeError as err:
        raise InputError(source, f"document {number}: {err}") from None
    template_keys = POD_TEMPLATE_PATHS.get(kind, ())
    pod = obj
    for depth, key in enumerate(template_keys, start=1):
        pod = pod.get(key)
        if pod is None:
            raise fail(template_keys[:depth], f" is missing: a {kind} runs the pods of its {path_text(template_keys)}")
    spec = pod.get("spec")
    if spec is None:
        raise fail(template_keys + ("spec",), " is missing: there is no pod to judge")
    if spec.get("containers") is None:
        raise fail(template_keys + ("spec", "containers"), " is missing: a pod runs at least one container")
    result.objects.append(
        LoadedObject(source, kind, namespace, name, pod.get("metadata") or {}, spec, number, location, template_keys)
    )
