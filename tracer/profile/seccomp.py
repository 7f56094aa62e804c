"""Writing OCI seccomp profiles (runtime-spec `LinuxSeccomp`) from recorded syscalls.

The allow-list by name comes from the recorded syscalls; argument conditions for the few
names whose arguments decide danger come from tracer.profile.conditions.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import numpy as np

from tracer.errors import InputError
from tracer.profile.conditions import ArgumentPolicy
from tracer.profile.filter import ALLOW, ERRNO, KILL_PROCESS, LOG, Rule, filter_from_oci
from tracer.syscalls import syscall_name, syscall_number
from tracer.trace.format import PHASES, PROFILE_PHASES, RESULTS, Trace

DEFAULT_ACTIONS = {"errno": ERRNO, "kill": KILL_PROCESS, "log": LOG}


# runc's init after it installs the filter (phase "handover") is Go: besides its fixed steps
# (reopen the exec fifo, write it, close fds, execve) its runtime's threads make calls at
# moments no single recording pins down. Measured with runc 1.1.5, 20 containers each as
# uid 0 and uid 1000 (tests/live/test_record_runc.py keeps this list honest): every run made
# close, epoll_ctl, fstatfs, futex, getdents64, getpid, nanosleep, openat, write; some runs
# also epoll_pwait (70%), tgkill (25-40%, goroutine preemption), rt_sigreturn (15-25%),
# sched_yield (5%). Once in 43 verification runs its runtime also started a thread there
# (rt_sigprocmask, sigaltstack, clone3 seen refused), so glibc's whole thread start sequence
# is in the set too: clone3 answered ENOSYS (glibc then uses clone, without namespace flags,
# which the argument conditions allow). A profile that misses one of these fails to start
# now and then (a refused rt_sigreturn kills runc's init with SIGSEGV), so a recording that
# saw runc's hand-over gets the whole set.
RUNC_HANDOVER_SYSCALLS = frozenset(
    {
        "close",
        "epoll_ctl",
        "epoll_pwait",
        "fstatfs",
        "futex",
        "getdents64",
        "getpid",
        "nanosleep",
        "openat",
        "rt_sigreturn",
        "sched_yield",
        "tgkill",
        "write",
        # thread start (Go with cgo creates threads through pthread_create)
        "clone",
        "clone3",
        "madvise",
        "mmap",
        "mprotect",
        "munmap",
        "rseq",
        "rt_sigprocmask",
        "set_robust_list",
        "sigaltstack",
    }
)


@dataclass
class RecordedSyscalls:
    """What the workload called, by name: allowed, and those that only ever got ENOSYS."""

    allowed: list[str]
    enosys_only: list[str]


def saw_runc_handover(trace: Trace) -> bool:
    """Whether runc handed over to the workload in this recording: under the filter (phase
    handover), or unfiltered in a container recorded without a seccomp filter of its own (a
    CRI pod running Unconfined while recorded: the pod recorder marks it), where the hand-over
    ran in phase runtime but will run under the profile once it is applied."""
    target = trace.metadata.get("target") or {}
    return bool(trace.calls_by_nr(("handover",)).any()) or target.get("runtime_handover") == "unfiltered"


def recorded_syscalls(trace: Trace, phases=PROFILE_PHASES) -> RecordedSyscalls:
    idx = [PHASES.index(p) for p in phases]
    counts = trace.final.syscalls[idx].sum(axis=0)  # [nr, result]
    calls, enosys = counts[:, 0], counts[:, RESULTS.index("ENOSYS")]
    allowed = set(RUNC_HANDOVER_SYSCALLS) if "handover" in phases and saw_runc_handover(trace) else set()
    enosys_only = []
    for nr in np.flatnonzero(calls):
        name = syscall_name(trace.arch, int(nr))
        if name is None:
            raise InputError(
                trace.source,
                f"syscall number {nr} has no name on {trace.arch} in libseccomp's tables; the profile cannot allow it",
            )
        # A syscall the kernel never implemented here is probed by libraries that fall back
        # on ENOSYS; answering ENOSYS keeps that behaviour without allowing the call.
        if enosys[nr] == calls[nr] and name not in allowed:
            enosys_only.append(name)
        else:
            allowed.add(name)
    return RecordedSyscalls(sorted(allowed), sorted(enosys_only))


def build_profile(
    arch: str, syscalls: RecordedSyscalls, default_action: str = "errno", policy: ArgumentPolicy | None = None
) -> dict:
    """An OCI LinuxSeccomp object that runc accepts: the names allowed unconditionally, then
    one rule per allowed argument set, then the names answered ENOSYS; everything else
    refused. Without a policy: names only (and clone3's ENOSYS fallback)."""
    if default_action not in DEFAULT_ACTIONS:
        raise InputError(None, f"unknown default action {default_action!r} (choose {', '.join(DEFAULT_ACTIONS)})")
    policy = policy or name_only_policy(arch, syscalls.allowed)
    unconditional = sorted(set(syscalls.allowed) - policy.conditioned - policy.enosys)
    profile = {
        "defaultAction": DEFAULT_ACTIONS[default_action],
        "architectures": [arch],
        # The runtime-spec wants at least one name in a rule: no unconditional rule when there is none.
        "syscalls": [
            *([Rule(ALLOW).to_oci(*unconditional)] if unconditional else []),
            *(rule.to_oci() for rule in policy.rules),
        ],
    }
    if default_action == "errno":
        profile["defaultErrnoRet"] = errno.EPERM
    enosys = sorted((set(syscalls.enosys_only) | policy.enosys) - set(unconditional))
    if enosys:
        profile["syscalls"].append(Rule(ERRNO, errno=errno.ENOSYS).to_oci(*enosys))
    return profile


def name_only_policy(arch: str, allowed: list[str]) -> ArgumentPolicy:
    """No argument conditions. glibc creates threads with clone3 and falls back to clone only
    on ENOSYS; EPERM from the default action would break thread creation (Docker's profile
    answers ENOSYS too)."""
    policy = ArgumentPolicy()
    if "clone3" not in allowed and "clone" in allowed and syscall_number(arch, "clone3") is not None:
        policy.enosys.add("clone3")
    return policy


def allowed_names(profile: dict) -> set[str]:
    """Names with at least one allow rule (some only with the arguments their rules name)."""
    return filter_from_oci(profile).names_allowed()


def enosys_names(profile: dict) -> set[str]:
    """Names a rule answers ENOSYS (clone3: glibc and Go then fall back to clone)."""
    return filter_from_oci(profile).names_enosys()


def conditioned_names(profile: dict) -> set[str]:
    """Names allowed only with some arguments (no unconditional allow rule)."""
    return filter_from_oci(profile).names_conditioned()
