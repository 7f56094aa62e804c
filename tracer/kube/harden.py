"""Apply a recorded profile to the pod templates of a Kubernetes manifest.

For each chosen container: a Localhost seccomp profile, capabilities dropped to the
recorded set, no privilege escalation, non-root, and a read-only root filesystem only
where the recording shows the container did not write outside its volumes. The
manifest is edited in ruamel.yaml round-trip mode, so comments, key order, quoting and
every other field survive; only the security contexts change.

What the manifest means is read as Kubernetes reads it (`manifests`: YAML 1.1 scalars, so
`privileged: yes` is true; every field the checks read type-checked; bounded input), and
that reading is what harden judges and decides on. Input that cannot be judged is refused
(exit 2), as are anchors, aliases and merge keys, which an in-place edit could silently
apply to other objects. Every edit is made to both trees, and the written text is read back
the Kubernetes way and must equal the edited reading exactly (types included), so the file
never says something other than what was judged.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from tracer.errors import InputError
from tracer.files import atomic_write_text
from tracer.kube import pss, yaml11
from tracer.kube.manifests import POD_TEMPLATE_PATHS, LoadedObject, LoadResult, classify_documents, path_text
from tracer.kube.yaml_out import round_trip_yaml
from tracer.profile.directory import ProfileDir

KUBELET_SECCOMP_ROOT = "/var/lib/kubelet/seccomp"

# Where each kind keeps its pod template; a Pod is its own template.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {"Pod": (), **POD_TEMPLATE_PATHS}


@dataclass
class ObjectReport:
    """What hardening did to one workload object and its Pod Security level."""

    kind: str
    name: str
    containers: list[str]
    level_before: str
    level_after: str
    # (check, detail) pairs that still keep the pod from "restricted"
    remaining: list[tuple[str, str]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class HardenResult:
    text: str
    reports: list[ObjectReport]
    warnings: list[str]

    @property
    def all_restricted(self) -> bool:
        return all(report.level_after == "restricted" for report in self.reports)


class Twin:
    """One mapping twice: in the round-trip tree (written out) and as Kubernetes reads it
    (judged). Reads come from the Kubernetes reading; writes go to both."""

    def __init__(self, rt: CommentedMap, value: dict):
        self.rt, self.value = rt, value

    def get(self, key: str, default=None):
        return self.value.get(key, default)

    def set(self, key: str, value) -> None:
        self.rt[key] = _round_trip_value(value)
        self.value[key] = _copy(value)

    def pop(self, key: str) -> None:
        self.rt.pop(key, None)
        self.value.pop(key, None)

    def child(self, key: str) -> Twin:
        """The mapping under `key`, made empty first when it is unset or not a mapping."""
        if not (isinstance(self.rt.get(key), dict) and isinstance(self.value.get(key), dict)):
            self.set(key, {})
        return Twin(self.rt[key], self.value[key])


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _round_trip_value(value):
    """A value for the round-trip tree; strings Kubernetes would read as something else
    when written plain (`on`, `0755`) are double-quoted."""
    if isinstance(value, dict):
        return CommentedMap((k, _round_trip_value(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_round_trip_value(v) for v in value)
    if isinstance(value, str) and yaml11.resolve("", value)[0] != yaml11.STR:
        return DoubleQuotedScalarString(value)
    return value


@dataclass
class PodTemplate:
    """One pod-bearing object: its identity, the pod spec in both trees, the containers."""

    owner_kind: str
    owner_name: str
    metadata: dict  # as Kubernetes reads it
    spec: Twin


def default_localhost_profile(profile: ProfileDir) -> str:
    """The localhostProfile value, relative to the kubelet seccomp root."""
    return f"seccomp-tracer/{profile.name}.json"


def harden_file(
    manifest: str | Path,
    profile: ProfileDir,
    out: str | Path | None,
    *,
    container: str | None = None,
    localhost_profile: str | None = None,
    pss_version: str = "latest",
) -> HardenResult:
    """Harden MANIFEST into OUT (written atomically, only when everything succeeded)."""
    path = Path(manifest)
    if not path.exists():
        raise InputError(path, "manifest not found")
    text = yaml11.read_text(path)
    result = harden_text(
        text,
        profile,
        source=str(path),
        container=container,
        localhost_profile=localhost_profile,
        pss_version=pss_version,
    )
    if out is not None:  # None: the caller writes result.text (to standard output)
        atomic_write_text(out, result.text)
    return result


def harden_text(
    text: str,
    profile: ProfileDir,
    *,
    source: str = "manifest",
    container: str | None = None,
    localhost_profile: str | None = None,
    pss_version: str = "latest",
) -> HardenResult:
    """Harden the pod templates in manifest TEXT; the result holds the new text and reports."""
    pss.parse_version(pss_version)
    prologue, body = split_prologue(text)
    try:
        if source.endswith(".json"):  # kubectl reads a .json file as JSON
            judged = yaml11.load_json(body, source)
        else:
            judged = yaml11.load_yaml(body, source)
    except InputError as err:
        if err.problem.startswith("invalid YAML: "):
            raise InputError(source, "not valid YAML: " + err.problem.removeprefix("invalid YAML: ")) from None
        raise
    for document in judged:
        if document.uses_aliases:
            raise InputError(
                source,
                f"document {document.number}: uses YAML anchors, aliases or merge keys (<<), "
                "which an in-place edit could apply to other objects: expand them first",
            )
    loaded = LoadResult()
    classify_documents(source, judged, loaded)
    yaml = round_trip_yaml(body)
    documents = _load_documents(yaml, body, source)
    if len(documents) != len(judged):
        raise InputError(source, "the YAML documents cannot be matched up for editing")
    templates = [_template(documents, obj, source) for obj in loaded.objects]
    if not templates:
        raise InputError(source, f"no pod template found (kinds with one: {', '.join(TEMPLATE_PATHS)})")
    reports_prefix = []
    if container is None:
        container, note = _recorded_container(templates, profile)
        if note:
            reports_prefix.append(note)
    if container is not None:
        _require_container(source, templates, container)

    localhost_profile = localhost_profile or default_localhost_profile(profile)
    reports, warnings, hardened = [], runtime_default_warnings(profile) + reports_prefix, []
    for template in templates:
        targets = _chosen_containers(template.spec, container)
        if not targets and container is None:
            raise InputError(
                source,
                f"{template.owner_kind}/{template.owner_name}: no container to harden (spec.containers is empty)",
            )
        if not targets:
            continue
        before, _ = pss.strictest_level(template.metadata, template.spec.value, pss_version)
        for target in targets:
            warnings += harden_container(target, template, profile, localhost_profile)
        hardened.append((template, targets, before))

    out = io.StringIO()
    out.write(prologue)
    yaml.dump_all(documents, out)
    _check_reads_back(out.getvalue()[len(prologue) :], judged, source)
    reports = [_report(template, targets, before, pss_version) for template, targets, before in hardened]
    return HardenResult(out.getvalue(), reports, warnings)


def _walk(node, keys: tuple):
    for key in keys:
        node = node[key]
    return node


def _template(documents: list, obj: LoadedObject, source: str) -> PodTemplate:
    """The round-trip twin of a loaded object's pod template."""
    try:
        rt = _walk(_walk(documents[obj.document - 1], obj.location), obj.template)
        rt_spec = rt["spec"]
    except (KeyError, IndexError, TypeError):
        rt, rt_spec = None, None
    where = obj.location + obj.template + ("spec",)
    if not isinstance(rt_spec, CommentedMap):
        raise InputError(source, f"document {obj.document}: {path_text(where)}: cannot be edited in place")
    for key in ("initContainers", "containers"):
        values, rts = obj.pod_spec.get(key) or [], rt_spec.get(key) or []
        if len(values) != len(rts) or not all(isinstance(rt, CommentedMap) for rt in rts):
            raise InputError(source, f"document {obj.document}: {path_text(where + (key,))}: cannot be edited in place")
    return PodTemplate(obj.kind, obj.name or "<unnamed>", obj.pod_metadata, Twin(rt_spec, obj.pod_spec))


def _check_reads_back(text: str, expected: list[yaml11.Document], source: str) -> None:
    """The written text must read, the Kubernetes way, exactly as the edited reading."""
    try:
        actual = yaml11.load_yaml(text, source)
    except InputError as err:
        raise InputError(source, f"the hardened manifest would not read back: {err.problem}") from None
    if len(actual) != len(expected):
        raise InputError(source, "the hardened manifest would not read back with the same documents")
    for want, got in zip(expected, actual):
        if (where := _difference(want.value, got.value, "")) is not None:
            raise InputError(
                source,
                f"document {want.number}: {where or 'the document'}: rewriting it would "
                "change what Kubernetes reads; edit this field by hand",
            )


def _difference(want, got, path: str) -> str | None:
    """The path of the first difference, types included (True is not 1); None if equal."""
    if type(want) is not type(got):
        return path
    if isinstance(want, dict):
        if list(want) != list(got):
            return path
        for key in want:
            if (where := _difference(want[key], got[key], f"{path}.{key}" if path else key)) is not None:
                return where
        return None
    if isinstance(want, list):
        if len(want) != len(got):
            return path
        for index, (a, b) in enumerate(zip(want, got)):
            if (where := _difference(a, b, f"{path}[{index}]")) is not None:
                return where
        return None
    return None if want == got else path


def runtime_default_warnings(profile: ProfileDir) -> list[str]:
    """The Localhost profile replaces RuntimeDefault: say where it allows more, argument
    conditions included (the comparison `tracer risk` makes)."""
    from tracer.profile.against import compare_profile_dir  # noqa: PLC0415

    comparison = compare_profile_dir(profile.path)
    return [
        f"{profile.path.name}: allows {w.rule}, which RuntimeDefault refuses (e.g. {'; '.join(w.examples)}): "
        + ("forced by recorded evidence" if w.evidence else "NO recorded evidence; see tracer risk")
        for w in comparison.wider
    ]


def harden_container(container: Twin, template: PodTemplate, profile: ProfileDir, localhost_profile: str) -> list[str]:
    """Set the hardened securityContext fields on one container; return warnings."""
    where = f"{template.owner_kind}/{template.owner_name} container {container.get('name')!r}"
    if container.rt.fa.flow_style():  # `{name: a, image: b}`: new nested fields read better as a block
        container.rt.fa.set_block_style()
    context = container.child("securityContext")
    warnings = []

    if context.get("privileged") is True:
        context.set("privileged", False)
        warnings.append(f"{where}: privileged: true replaced by false (the recorded capabilities are granted instead)")
    context.set("allowPrivilegeEscalation", False)
    _set_capabilities(context, profile.capabilities_add)
    warnings += _set_user(context, template.spec, profile, where)
    warnings += _set_read_only_root(context, profile, where)
    context.set("seccompProfile", {"type": "Localhost", "localhostProfile": localhost_profile})
    return warnings


def _set_capabilities(context: Twin, recorded: list[str]) -> None:
    capabilities = context.child("capabilities")
    capabilities.set("drop", ["ALL"])
    kubernetes_names = sorted(name.removeprefix("CAP_") for name in recorded)
    if kubernetes_names:
        capabilities.set("add", kubernetes_names)
    else:
        capabilities.pop("add")


def _set_user(context: Twin, pod_spec: Twin, profile: ProfileDir, where: str) -> list[str]:
    context.set("runAsNonRoot", True)
    pod_context = pod_spec.get("securityContext") or {}
    manifest_uid = context.get("runAsUser")
    if manifest_uid is None:
        manifest_uid = pod_context.get("runAsUser")
    if manifest_uid is None and profile.run_as_user:
        context.set("runAsUser", profile.run_as_user)
        return []
    if manifest_uid == 0:
        return [f"{where}: runAsUser is 0, so runAsNonRoot: true will stop it from starting; set a non-root runAsUser"]
    if manifest_uid is None and profile.run_as_user == 0:
        return [
            f"{where}: the recording ran as root (uid 0); runAsNonRoot: true lets it start "
            "only if the image's USER is non-root, otherwise set runAsUser"
        ]
    return []


def _set_read_only_root(context: Twin, profile: ProfileDir, where: str) -> list[str]:
    if profile.writes_outside_volumes is False or profile.rootfs_readonly is True:
        context.set("readOnlyRootFilesystem", True)
        return []
    if context.get("readOnlyRootFilesystem") is True:
        return []
    if profile.writes_outside_volumes is True:
        why = "the recording saw writes outside its volumes"
    else:
        why = "the recording does not say whether it wrote outside its volumes"
    return [f"{where}: readOnlyRootFilesystem left unset: {why}"]


def _report(template: PodTemplate, targets: list[Twin], before: str, pss_version: str) -> ObjectReport:
    spec = template.spec.value
    after, _ = pss.strictest_level(template.metadata, spec, pss_version)
    report = ObjectReport(
        template.owner_kind, template.owner_name, [str(target.get("name") or "") for target in targets], before, after
    )
    if after != "restricted":
        evaluation = pss.evaluate(template.metadata, spec, "restricted", pss_version)
        report.remaining = [(violation.check, violation.detail) for violation in evaluation.violations]
    return report


# --- finding containers ---


def _recorded_container(templates: list[PodTemplate], profile: ProfileDir) -> tuple[str | None, str | None]:
    """Without --container: the container the profile was recorded from (recording.json), when
    the manifest has it; otherwise every app container, as before, with a note saying why."""
    recorded = profile.recorded_container
    if recorded is None:
        return None, None
    names = {str(c.get("name") or "") for t in templates for c in _containers(t.spec)}
    if recorded in names:
        return recorded, None
    return None, (
        f"the profile was recorded from container {recorded!r}, which no pod template here has: "
        "every app container is hardened (name one with --container)"
    )


def _chosen_containers(pod_spec: Twin, name: str | None) -> list[Twin]:
    for key in ("initContainers", "containers"):
        if isinstance(pod_spec.rt.get(key), CommentedSeq) and pod_spec.rt[key].fa.flow_style():
            pod_spec.rt[key].fa.set_block_style()  # a block container cannot sit in a flow list
    keys = ("containers",) if name is None else ("initContainers", "containers")
    return [c for c in _containers(pod_spec, keys) if name is None or c.get("name") == name]


def _containers(pod_spec: Twin, keys=("initContainers", "containers")) -> list[Twin]:
    found = []
    for key in keys:  # paired up and checked by _template
        found += [Twin(rt, value) for rt, value in zip(pod_spec.rt.get(key) or [], pod_spec.get(key) or [])]
    return found


def _require_container(source: str, templates: list[PodTemplate], name: str) -> None:
    names = {str(c.get("name") or "") for t in templates for c in _containers(t.spec)}
    if name not in names:
        raise InputError(
            source,
            f"no container named {name!r} in any pod template (containers: {', '.join(sorted(names)) or 'none'})",
        )


# --- YAML round trip ---


def split_prologue(text: str) -> tuple[str, str]:
    """(comments up to and including a leading `---`, the rest).

    ruamel.yaml drops comments that precede an explicit first `---`, so they are kept
    aside verbatim and written back in front of the output.
    """
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if re.match(r"^---\s*(#.*)?$", stripped):
            return "".join(lines[: index + 1]), "".join(lines[index + 1 :])
        break
    return "", text


def _load_documents(yaml: YAML, text: str, source: str) -> list:
    try:
        return list(yaml.load_all(text))
    except (ValueError, TypeError, OverflowError) as err:  # e.g. a timestamp ruamel cannot build
        raise InputError(source, f"not valid YAML for editing in place: {err}") from None
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InputError(source, f"not valid YAML{at}: {problem}") from None


def plain(node):
    """Round-trip YAML nodes as plain dicts, lists and scalars (for evaluators, schemas)."""
    if isinstance(node, dict):
        return {str(key): plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain(value) for value in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node
