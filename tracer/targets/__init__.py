"""Targets: turn "runc container X", "containerd task Y", "pod N/P", "cgroup", "PID" or "a
command" into one cgroup v2 to watch, plus how to start it and tell when it is done when we
own it. One module per kind; `base` has what they share; `options` the choice of one."""

from tracer.targets.base import CommandTarget, PidTarget, Target, cgroup_target, process_alive
from tracer.targets.containerd import containerd_target
from tracer.targets.kubernetes import kubernetes_pod_target
from tracer.targets.options import TargetOptions
from tracer.targets.runc import RuncBundleTarget, RuncTarget, recording_config

__all__ = [
    "CommandTarget",
    "PidTarget",
    "RuncBundleTarget",
    "RuncTarget",
    "Target",
    "TargetOptions",
    "cgroup_target",
    "containerd_target",
    "kubernetes_pod_target",
    "process_alive",
    "recording_config",
]
