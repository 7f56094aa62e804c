"""Apply a recorded profile to the pod templates of a Kubernetes manifest.

For each chosen container: a Localhost seccomp profile, capabilities dropped to the
recorded set, no privilege escalation, non-root, and a read-only root filesystem only
where the recording shows the container did not write outside its volumes. The
manifest is edited in ruamel.yaml round-trip mode, so comments, key order, quoting and
every other field survive; only the security contexts change.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from tracer.errors import InputError, atomic_write_text
from tracer.kube import pss
from tracer.kube.manifests import POD_TEMPLATE_PATHS
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


@dataclass(frozen=True)
class PodTemplate:
    owner_kind: str
    owner_name: str
    metadata: dict
    spec: CommentedMap


def default_localhost_profile(profile: ProfileDir) -> str:
    """The localhostProfile value, relative to the kubelet seccomp root."""
    return f"seccomp-tracer/{profile.name}.json"


def harden_file(manifest: str | Path, profile: ProfileDir, out: str | Path, *,
                container: str | None = None, localhost_profile: str | None = None,
                pss_version: str = "latest") -> HardenResult:
    """Harden MANIFEST into OUT (written atomically, only when everything succeeded)."""
    path = Path(manifest)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(path, "manifest not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read: {err}") from None
    result = harden_text(text, profile, source=str(path), container=container,
                         localhost_profile=localhost_profile, pss_version=pss_version)
    atomic_write_text(out, result.text)
    return result


def harden_text(text: str, profile: ProfileDir, *, source: str = "manifest",
                container: str | None = None, localhost_profile: str | None = None,
                pss_version: str = "latest") -> HardenResult:
    """Harden the pod templates in manifest TEXT; the result holds the new text and reports."""
    prologue, body = split_prologue(text)
    yaml = round_trip_yaml(body)
    documents = _load_documents(yaml, body, source)
    templates = [template for document in documents for template in pod_templates(document)]
    if not templates:
        raise InputError(source, f"no pod template found (kinds with one: {', '.join(TEMPLATE_PATHS)})")
    if container is not None:
        _require_container(source, templates, container)

    localhost_profile = localhost_profile or default_localhost_profile(profile)
    reports, warnings = [], runtime_default_warnings(profile)
    for template in templates:
        targets = _chosen_containers(template.spec, container)
        if not targets:
            continue
        before, _ = pss.strictest_level(template.metadata, plain(template.spec), pss_version)
        for target in targets:
            warnings += harden_container(target, template, profile, localhost_profile)
        reports.append(_report(template, targets, before, pss_version))

    out = io.StringIO()
    out.write(prologue)
    yaml.dump_all(documents, out)
    return HardenResult(out.getvalue(), reports, warnings)


def runtime_default_warnings(profile: ProfileDir) -> list[str]:
    """The Localhost profile replaces RuntimeDefault: say where it allows more, argument
    conditions included (the comparison `tracer risk` makes)."""
    from tracer.profile.against import compare_profile_dir  # noqa: PLC0415

    comparison = compare_profile_dir(profile.path)
    return [f"{profile.path.name}: allows {w.rule}, which RuntimeDefault refuses (e.g. {'; '.join(w.examples)}): "
            + ("forced by recorded evidence" if w.evidence else "NO recorded evidence; see tracer risk")
            for w in comparison.wider]


def harden_container(container: CommentedMap, template: PodTemplate, profile: ProfileDir,
                     localhost_profile: str) -> list[str]:
    """Set the hardened securityContext fields on one container; return warnings."""
    where = f"{template.owner_kind}/{template.owner_name} container {container.get('name')!r}"
    if container.fa.flow_style():  # `{name: a, image: b}`: new nested fields read better as a block
        container.fa.set_block_style()
    if not isinstance(container.get("securityContext"), dict):
        container["securityContext"] = CommentedMap()
    context = container["securityContext"]
    warnings = []

    if context.get("privileged") is True:
        context["privileged"] = False
        warnings.append(f"{where}: privileged: true replaced by false (the recorded "
                        "capabilities are granted instead)")
    context["allowPrivilegeEscalation"] = False
    _set_capabilities(context, profile.capabilities_add)
    warnings += _set_user(context, template.spec, profile, where)
    warnings += _set_read_only_root(context, profile, where)
    context["seccompProfile"] = CommentedMap(type="Localhost", localhostProfile=localhost_profile)
    return warnings


def _set_capabilities(context: CommentedMap, recorded: list[str]) -> None:
    capabilities = context.get("capabilities")
    if not isinstance(capabilities, dict):
        capabilities = context["capabilities"] = CommentedMap()
    capabilities["drop"] = CommentedSeq(["ALL"])
    kubernetes_names = sorted(name.removeprefix("CAP_") for name in recorded)
    if kubernetes_names:
        capabilities["add"] = CommentedSeq(kubernetes_names)
    else:
        capabilities.pop("add", None)


def _set_user(context: CommentedMap, pod_spec: CommentedMap, profile: ProfileDir,
              where: str) -> list[str]:
    context["runAsNonRoot"] = True
    pod_context = pod_spec.get("securityContext") or {}
    manifest_uid = context.get("runAsUser", pod_context.get("runAsUser"))
    if manifest_uid is None and profile.run_as_user:
        context["runAsUser"] = profile.run_as_user
        return []
    if manifest_uid == 0:
        return [f"{where}: runAsUser is 0, so runAsNonRoot: true will stop it from starting; "
                "set a non-root runAsUser"]
    if manifest_uid is None and profile.run_as_user == 0:
        return [f"{where}: the recording ran as root (uid 0); runAsNonRoot: true lets it start "
                "only if the image's USER is non-root, otherwise set runAsUser"]
    return []


def _set_read_only_root(context: CommentedMap, profile: ProfileDir, where: str) -> list[str]:
    if profile.writes_outside_volumes is False or profile.rootfs_readonly is True:
        context["readOnlyRootFilesystem"] = True
        return []
    if context.get("readOnlyRootFilesystem") is True:
        return []
    if profile.writes_outside_volumes is True:
        why = "the recording saw writes outside its volumes"
    else:
        why = "the recording does not say whether it wrote outside its volumes"
    return [f"{where}: readOnlyRootFilesystem left unset: {why}"]


def _report(template: PodTemplate, targets: list[CommentedMap], before: str,
            pss_version: str) -> ObjectReport:
    spec = plain(template.spec)
    after, _ = pss.strictest_level(template.metadata, spec, pss_version)
    report = ObjectReport(template.owner_kind, template.owner_name,
                          [str(target.get("name")) for target in targets], before, after)
    if after != "restricted":
        evaluation = pss.evaluate(template.metadata, spec, "restricted", pss_version)
        report.remaining = [(violation.check, violation.detail) for violation in evaluation.violations]
    return report


# --- finding pod templates and containers ---

def pod_templates(document) -> list[PodTemplate]:
    """The pod templates inside one YAML document (a List is searched item by item)."""
    if not isinstance(document, dict):
        return []
    kind = document.get("kind")
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List")):
        items = document.get("items") or []
        return [template for item in items for template in pod_templates(item)]
    if kind not in TEMPLATE_PATHS:
        return []
    node = document
    for key in TEMPLATE_PATHS[kind]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or not isinstance(node.get("spec"), dict):
        return []
    name = (document.get("metadata") or {}).get("name", "<unnamed>")
    return [PodTemplate(kind, str(name), plain(node.get("metadata") or {}), node["spec"])]


def _chosen_containers(pod_spec: CommentedMap, name: str | None) -> list[CommentedMap]:
    for key in ("initContainers", "containers"):
        if isinstance(pod_spec.get(key), CommentedSeq) and pod_spec[key].fa.flow_style():
            pod_spec[key].fa.set_block_style()  # a block container cannot sit in a flow list
    if name is None:
        return [c for c in pod_spec.get("containers") or [] if isinstance(c, dict)]
    return [c for c in _all_containers(pod_spec) if c.get("name") == name]


def _all_containers(pod_spec) -> list:
    found = []
    for key in ("initContainers", "containers"):
        found += [c for c in pod_spec.get(key) or [] if isinstance(c, dict)]
    return found


def _require_container(source: str, templates: list[PodTemplate], name: str) -> None:
    names = {str(c.get("name")) for t in templates for c in _all_containers(t.spec)}
    if name not in names:
        raise InputError(source, f"no container named {name!r} in any pod template "
                                 f"(containers: {', '.join(sorted(names)) or 'none'})")


# --- YAML round trip ---

def round_trip_yaml(text: str = "") -> YAML:
    """A round-trip YAML that writes sequences indented the way `text` indents them."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long strings
    mapping, offset = guess_indentation(text)
    yaml.indent(mapping=mapping, sequence=mapping + offset, offset=offset)
    return yaml


def guess_indentation(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset) from the first block sequence under a key.

    Kubernetes manifests come in two styles: `- ` level with the parent key (kubectl's
    output) or indented under it (most hand-written and Helm-rendered files).
    """
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    mapping = 2
    for parent, child in zip(lines, lines[1:]):
        if not re.match(r"^\s*[^\s-][^:]*:\s*$", parent):
            continue
        parent_indent = len(parent) - len(parent.lstrip())
        child_indent = len(child) - len(child.lstrip())
        if child.lstrip().startswith("- "):
            return mapping, max(child_indent - parent_indent, 0)
        if child_indent > parent_indent:
            mapping = child_indent - parent_indent
    return mapping, 0


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
            return "".join(lines[:index + 1]), "".join(lines[index + 1:])
        break
    return "", text


def _load_documents(yaml: YAML, text: str, source: str) -> list:
    try:
        return list(yaml.load_all(text))
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
