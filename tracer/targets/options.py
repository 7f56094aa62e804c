"""What `record` is asked to watch, as one value: exactly one target, and the settings of its kind."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tracer.errors import InputError
from tracer.targets.base import CommandTarget, PidTarget, Target, cgroup_target
from tracer.targets.containerd import containerd_target
from tracer.targets.kubernetes import kubernetes_pod_target
from tracer.targets.runc import RuncBundleTarget, RuncTarget


@dataclass(frozen=True)
class TargetOptions:
    command: list[str] | None = None
    runc: str | None = None
    runc_bundle: str | None = None
    runc_id: str | None = None  # --runc-bundle's container id
    runc_root: str | None = None
    container_log: str | None = None  # --runc-bundle: the container's output goes there
    containerd: str | None = None
    containerd_namespace: str = "default"
    containerd_state: Path = Path("/run/containerd")
    cgroup: str | None = None
    pid: int | None = None
    kubernetes_pod: str | None = None
    kubernetes_selector: str | None = None  # recorded from creation only (tracer.recorder.pod)
    container: str | None = None
    cri_endpoint: str | None = None

    def chosen(self) -> list[str]:
        """The targets given, by option name."""
        given = (
            ("-- COMMAND", self.command),
            ("--runc", self.runc),
            ("--runc-bundle", self.runc_bundle),
            ("--containerd", self.containerd),
            ("--cgroup", self.cgroup),
            ("--pid", self.pid),
            ("--kubernetes-pod", self.kubernetes_pod),
        )
        return [name for name, value in given if value]

    def target(self) -> Target:
        """The one target given, made (a cgroup, a container from a bundle) or found."""
        chosen = self.chosen()
        if len(chosen) != 1:
            raise InputError(
                None,
                "choose exactly one target: --runc, --runc-bundle, --containerd, --cgroup, --pid, "
                "--kubernetes-pod or -- COMMAND" + (f" (got {', '.join(chosen)})" if chosen else ""),
            )
        if self.command:
            return CommandTarget.create(self.command)
        if self.runc:
            return RuncTarget.create(self.runc, self.runc_root)
        if self.runc_bundle:
            return RuncBundleTarget.create(self.runc_bundle, self.runc_id, self.runc_root, self.container_log)
        if self.containerd:
            return containerd_target(self.containerd, self.containerd_namespace, self.containerd_state)
        if self.cgroup:
            return cgroup_target(self.cgroup)
        if self.pid:
            return PidTarget.create(self.pid)
        return kubernetes_pod_target(self.kubernetes_pod, self.container, self.cri_endpoint)
