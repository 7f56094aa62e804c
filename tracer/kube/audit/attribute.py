"""Who a request was for (the owning workload) and who made it (user, impersonation).

Expects an event whose field types `shape.field_problem` has accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KIND_OF_RESOURCE = {
    "pods": "Pod",
    "replicasets": "ReplicaSet",
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
    "jobs": "Job",
    "cronjobs": "CronJob",
    "replicationcontrollers": "ReplicationController",
    "podtemplates": "PodTemplate",
}
# The kube-controller-manager controller that created an object, and the kind it owns.
# The controller's name is the end of the username (system:serviceaccount:kube-system:<name>,
# with --use-service-account-credentials) or of the userAgent (".../<name>" without).
OWNER_KIND_OF_CONTROLLER = {
    "replicaset-controller": "ReplicaSet",
    "statefulset-controller": "StatefulSet",
    "daemon-set-controller": "DaemonSet",
    "job-controller": "Job",
    "replication-controller": "ReplicationController",
    "deployment-controller": "Deployment",
    "cronjob-controller": "CronJob",
}

# Generated names (k8s.io/apiserver names.SimpleNameGenerator and the controllers):
#   generateName pods:  <owner>-<5 chars of "bcdfghjklmnpqrstvwxz2456789">
#   ReplicaSet:         <deployment>-<pod-template-hash>; the hash is SafeEncodeString of a
#                       decimal uint32, so only the letters the digits map to: 4-9 b c d f
#   StatefulSet pods:   <statefulset>-<ordinal>
#   CronJob jobs:       <cronjob>-<scheduled time in minutes since the epoch, 8 digits today>
GENERATED_SUFFIX = re.compile(r"-[bcdfghjklmnpqrstvwxz2456789]{5}\Z")
POD_TEMPLATE_HASH = re.compile(r"-[4-9bcdf]{4,10}\Z")
ORDINAL = re.compile(r"-\d+\Z")
CRONJOB_SCHEDULE = re.compile(r"-\d{8,}\Z")
FORBIDDEN_NAME = re.compile(r'^[a-z.]+ "(?P<name>[^"]+)" is forbidden:')


@dataclass(frozen=True, order=True)
class Workload:
    namespace: str
    kind: str
    name: str


def workload_of(event: dict) -> Workload:
    """The owning object of what the request created or changed."""
    ref = event.get("objectRef") or {}
    namespace = ref.get("namespace") or _request_metadata(event).get("namespace") or ""
    resource = ref.get("resource") or ""
    kind = KIND_OF_RESOURCE.get(resource, resource or "?")
    name, generated = _object_name(event)
    if kind == "Pod":
        kind, name = _pod_owner(event, name, generated)
    return Workload(namespace, *_top_owner(kind, name))


def _pod_owner(event: dict, pod_name: str, generated: bool) -> tuple[str, str]:
    """Owner of a pod: its controller ownerReference (Request level), else the creating
    controller plus the pod name with the controller's suffix stripped."""
    owner = _controller_reference(event)
    if owner:
        return owner
    controller_kind = OWNER_KIND_OF_CONTROLLER.get(_creating_controller(event))
    if controller_kind == "StatefulSet":
        return "StatefulSet", ORDINAL.sub("", pod_name)
    if not pod_name:  # Metadata level and allowed: the generated name was never logged
        return controller_kind or "Pod", "(name not logged)"
    if controller_kind or generated:
        # A trailing "-" means only the generateName prefix was logged: nothing to strip.
        base = pod_name[:-1] if pod_name.endswith("-") else GENERATED_SUFFIX.sub("", pod_name)
        return controller_kind or "Pod", base
    return "Pod", pod_name


def _top_owner(kind: str, name: str) -> tuple[str, str]:
    """Walk up the well-known chains: ReplicaSet -> Deployment, Job -> CronJob."""
    if kind == "ReplicaSet" and POD_TEMPLATE_HASH.search(name):
        return "Deployment", POD_TEMPLATE_HASH.sub("", name)
    if kind == "Job" and CRONJOB_SCHEDULE.search(name):
        return "CronJob", CRONJOB_SCHEDULE.sub("", name)
    return kind, name


def _object_name(event: dict) -> tuple[str, bool]:
    """(name, generated). The audit objectRef lacks the name when the client sent only
    generateName; the name is then in the 403 message or the logged objects."""
    explicit = (event.get("objectRef") or {}).get("name")
    if explicit:
        return explicit, False
    status = event.get("responseStatus") or {}
    match = FORBIDDEN_NAME.match(status.get("message") or "")
    candidates = [
        (status.get("details") or {}).get("name"),
        match and match["name"],
        ((event.get("responseObject") or {}).get("metadata") or {}).get("name"),
        _request_metadata(event).get("name"),
        _request_metadata(event).get("generateName"),
    ]
    return next((name for name in candidates if name), ""), True


def _request_metadata(event: dict) -> dict:
    return (event.get("requestObject") or {}).get("metadata") or {}


def _controller_reference(event: dict) -> tuple[str, str] | None:
    for ref in _request_metadata(event).get("ownerReferences") or []:
        if ref and ref.get("controller") and ref.get("kind") and ref.get("name"):
            return ref["kind"], ref["name"]
    return None


def _creating_controller(event: dict) -> str:
    username = (event.get("user") or {}).get("username") or ""
    agent = event.get("userAgent") or ""
    for candidate in (username.rsplit(":", 1)[-1], agent.rsplit("/", 1)[-1].rsplit(":", 1)[-1]):
        if candidate in OWNER_KIND_OF_CONTROLLER:
            return candidate
    return ""


def requester(event: dict) -> str:
    """Who asked: the authenticated user, and whom they impersonated."""
    user = (event.get("user") or {}).get("username") or "(unknown)"
    impersonated = (event.get("impersonatedUser") or {}).get("username")
    return f"{user} as {impersonated}" if impersonated else user
