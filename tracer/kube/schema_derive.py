"""Derive `tracer/kube/pod_schema.py` from the Kubernetes API's OpenAPI definitions.

The Pod Security checks and `k8s harden` read a few dozen fields of a pod. Before judging,
`tracer.kube.shapes` checks each of them has the type the Kubernetes API gives it, so that
`privileged: "yes"` or `drop: NOT_ALL` is an input error and never an "allowed". This module
writes the compact table of those types, `pod_schema.TYPES`, from the upstream definitions:

    python -m tracer.kube.schema_derive [DEFINITIONS.json] > tracer/kube/pod_schema.py

DEFINITIONS.json is any of: the upstream OpenAPI v3 document of kubernetes/kubernetes
(`api/openapi-spec/v3/api__v1_openapi.json` and the apps/batch ones: `components.schemas`),
the OpenAPI v2 `api/openapi-spec/swagger.json` (`definitions`), or the JSON-schema bundle
that the kubernetes-validate package generates from that swagger.json
(`kubernetes-json-schema/v<version>-local/_definitions.json`, `$defs`). Without an argument
the bundle of the installed kubernetes-validate package, newest version, is read; that is
how the committed table was made (see its header). tests/unit/test_kube_shapes.py re-derives it
and fails when the two differ.

It also writes `pod_schema.API_KINDS`: the kinds each built-in apiVersion that serves a pod
kind (v1, apps/v1, batch/v1) defines (`x-kubernetes-group-version-kind`), plus `List`
for v1; a manifest naming another kind at one of these apiVersions is a typo kubectl would
refuse ("no matches for kind"), not an object to skip.

Only the fields listed in `SELECTION` are kept (every field for `Volume`, whose sources the
restrictedVolumes check enumerates); a referenced type that is not selected becomes
"object" (any mapping). Type descriptors: "boolean", "string", "int32", "int64", "object",
"[]T" (array of T), "map[string]T", or the short name of another table entry.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# definition name -> fields to keep ("*": all of them). Roots first, then what they reach.
SELECTION: dict[str, tuple[str, ...] | str] = {
    # workload kinds and the path to their pod template
    "io.k8s.api.core.v1.Pod": ("metadata", "spec"),
    "io.k8s.api.core.v1.PodTemplate": ("metadata", "template"),
    "io.k8s.api.core.v1.ReplicationController": ("metadata", "spec"),
    "io.k8s.api.core.v1.ReplicationControllerSpec": ("template",),
    "io.k8s.api.apps.v1.Deployment": ("metadata", "spec"),
    "io.k8s.api.apps.v1.DeploymentSpec": ("template",),
    "io.k8s.api.apps.v1.StatefulSet": ("metadata", "spec"),
    "io.k8s.api.apps.v1.StatefulSetSpec": ("template",),
    "io.k8s.api.apps.v1.DaemonSet": ("metadata", "spec"),
    "io.k8s.api.apps.v1.DaemonSetSpec": ("template",),
    "io.k8s.api.apps.v1.ReplicaSet": ("metadata", "spec"),
    "io.k8s.api.apps.v1.ReplicaSetSpec": ("template",),
    "io.k8s.api.batch.v1.Job": ("metadata", "spec"),
    "io.k8s.api.batch.v1.JobSpec": ("template",),
    "io.k8s.api.batch.v1.CronJob": ("metadata", "spec"),
    "io.k8s.api.batch.v1.CronJobSpec": ("jobTemplate",),
    "io.k8s.api.batch.v1.JobTemplateSpec": ("metadata", "spec"),
    "io.k8s.api.core.v1.PodTemplateSpec": ("metadata", "spec"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": ("name", "namespace", "annotations"),
    # what the checks read
    "io.k8s.api.core.v1.PodSpec": (
        "hostNetwork",
        "hostPID",
        "hostIPC",
        "hostUsers",
        "os",
        "securityContext",
        "initContainers",
        "containers",
        "ephemeralContainers",
        "volumes",
    ),
    "io.k8s.api.core.v1.PodOS": ("name",),
    "io.k8s.api.core.v1.PodSecurityContext": (
        "runAsNonRoot",
        "runAsUser",
        "seLinuxOptions",
        "seccompProfile",
        "appArmorProfile",
        "sysctls",
        "windowsOptions",
    ),
    "io.k8s.api.core.v1.Container": (
        "name",
        "securityContext",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
    ),
    "io.k8s.api.core.v1.EphemeralContainer": (
        "name",
        "securityContext",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
    ),
    "io.k8s.api.core.v1.SecurityContext": (
        "privileged",
        "allowPrivilegeEscalation",
        "capabilities",
        "procMount",
        "runAsNonRoot",
        "runAsUser",
        "readOnlyRootFilesystem",
        "seLinuxOptions",
        "seccompProfile",
        "appArmorProfile",
        "windowsOptions",
    ),
    "io.k8s.api.core.v1.Capabilities": ("add", "drop"),
    "io.k8s.api.core.v1.SELinuxOptions": ("user", "role", "type", "level"),
    "io.k8s.api.core.v1.SeccompProfile": ("type", "localhostProfile"),
    "io.k8s.api.core.v1.AppArmorProfile": ("type", "localhostProfile"),
    "io.k8s.api.core.v1.Sysctl": ("name", "value"),
    "io.k8s.api.core.v1.WindowsSecurityContextOptions": ("hostProcess",),
    "io.k8s.api.core.v1.ContainerPort": ("containerPort", "hostPort"),
    "io.k8s.api.core.v1.Probe": ("httpGet", "tcpSocket"),
    "io.k8s.api.core.v1.Lifecycle": ("postStart", "preStop"),
    "io.k8s.api.core.v1.LifecycleHandler": ("httpGet", "tcpSocket"),
    "io.k8s.api.core.v1.HTTPGetAction": ("host",),
    "io.k8s.api.core.v1.TCPSocketAction": ("host",),
    "io.k8s.api.core.v1.Volume": "*",
}


def short_name(definition: str) -> str:
    return definition.rsplit(".", 1)[-1]


def _definitions(document: dict) -> dict:
    for key in ("$defs", "definitions"):
        if key in document:
            return document[key]
    if "components" in document:
        return document["components"]["schemas"]
    raise ValueError("no $defs, definitions or components.schemas in the document")


def _ref(schema: dict) -> str | None:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    for wrapper in ("allOf", "anyOf"):  # OpenAPI v3 wraps references to add a description
        refs = [s["$ref"] for s in schema.get(wrapper, []) if "$ref" in s]
        if len(refs) == 1:
            return refs[0].rsplit("/", 1)[-1]
    return None


def _type(schema: dict) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):  # JSON schema bundles add "null"
        declared = [t for t in declared if t != "null"]
        declared = declared[0] if len(declared) == 1 else None
    return declared


def describe(schema: dict) -> str:
    """The compact descriptor of one property schema."""
    if (ref := _ref(schema)) is not None:
        return short_name(ref) if ref in SELECTION else "object"
    kind = _type(schema)
    if kind == "boolean" or kind == "string":
        return kind
    if kind == "integer":
        return schema.get("format", "int64")
    if kind == "array":
        return "[]" + describe(schema["items"])
    if kind == "object":
        extra = schema.get("additionalProperties")
        return "map[string]" + describe(extra) if isinstance(extra, dict) else "object"
    raise ValueError(f"cannot describe schema {schema!r}")


def derive(document: dict) -> dict[str, dict[str, str]]:
    definitions = _definitions(document)
    types = {}
    for name, wanted in SELECTION.items():
        if name not in definitions:
            raise ValueError(f"definition {name} not found")
        properties = definitions[name].get("properties", {})
        fields = sorted(properties) if wanted == "*" else wanted
        missing = [f for f in fields if f not in properties]
        if missing:
            raise ValueError(f"{name} has no field {', '.join(missing)}")
        types[short_name(name)] = {field: describe(properties[field]) for field in fields}
    return types


POD_KINDS = (
    "Pod",
    "PodTemplate",
    "ReplicationController",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
)


def derive_kinds(document: dict) -> dict[str, list[str]]:
    """apiVersion -> kinds, for the built-in apiVersions that serve a pod kind."""
    kinds: dict[str, set[str]] = {}
    for schema in _definitions(document).values():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            kinds.setdefault(api_version, set()).add(gvk["kind"])
    served = {v: k for v, k in kinds.items() if k & set(POD_KINDS)}
    if "v1" in served:
        served["v1"].add("List")  # metav1.List, the client-side list kubectl reads and writes
    return {version: sorted(served[version]) for version in sorted(served)}


def bundled_definitions() -> tuple[Path, str]:
    """The kubernetes-validate bundle of the newest Kubernetes version, and that version."""
    import kubernetes_validate  # noqa: PLC0415 (a test dependency, needed only to regenerate pod_schema.py)

    version = kubernetes_validate.latest_version()
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return root / f"v{version}-local" / "_definitions.json", version


def render(types: dict[str, dict[str, str]], kinds: dict[str, list[str]], source: str) -> str:
    lines = [
        '"""Types of the Kubernetes API fields the Pod Security checks and `k8s harden` read.',
        "",
        "GENERATED by `python -m tracer.kube.schema_derive` (see that module); do not edit.",
        f"Source: {source}.",
        '"""',
        "",
        f"SOURCE = {source!r}",
        "",
        "TYPES: dict[str, dict[str, str]] = {",
    ]
    for name, fields in types.items():
        lines.append(f"    {name!r}: {{")
        lines += [f"        {field!r}: {descriptor!r}," for field, descriptor in fields.items()]
        lines.append("    },")
    lines.append("}")
    lines += ["", "API_KINDS: dict[str, tuple[str, ...]] = {"]
    for version, names in kinds.items():
        lines.append(f"    {version!r}: (")
        lines += [f"        {name!r}," for name in names]
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv:
        path = Path(argv[0])
        source = f"OpenAPI definitions in {path.name}"
    else:
        path, version = bundled_definitions()
        source = (
            f"Kubernetes v{version} OpenAPI (swagger.json of kubernetes/kubernetes), as converted to "
            f"JSON schema by kubernetes-validate {version}: kubernetes-json-schema/v{version}-local/"
            "_definitions.json"
        )
    document = json.loads(path.read_text())
    sys.stdout.write(render(derive(document), derive_kinds(document), source))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
