"""Capability inference: which capabilities the recorded workload provably uses.

The recorder attributes every capability check to the syscall in flight on that thread and
to that syscall's result (see recorder.bpf.c). From those rows, per capability:

- granted                                  -> used: evidence of use, so it is added; except
  advisory checks (below), whose outcome the kernel itself does not act on;
- denied, and the call then failed with EPERM/EACCES -> required by that call. It is
  reported, not added: the recorded run went on without it, so the workload provably did
  without it (a non-root process probing PATH entries it cannot read makes many of these
  for CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH). `generate --add-capability` adds one by
  hand when that call must succeed;
- denied, and the call succeeded or failed otherwise -> not required: the check decided
  nothing (e.g. CAP_SYS_ADMIN in mmap's overcommit accounting for a non-root process).

Only the workload's phases count: checks made by the container runtime's own set-up (phase
"runtime", e.g. runc's init using CAP_DAC_OVERRIDE to reopen its exec fifo) are not the
workload's. Nor is a grant of a capability the process did not hold: where the trace says
which capabilities the container had (`target.effective_capabilities`, from the runtime's
spec), such a grant was made under credentials the kernel put in place of the workload's,
e.g. overlayfs checking with its mounter's credentials (CAP_SYS_ADMIN in newfstatat on a
container's overlay root file system, measured on a CRI pod with every capability dropped). Record with the capabilities the workload runs with today; the result is the
subset it used.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from tracer.capabilities import capability_name, parse_capability
from tracer.syscalls import syscall_name
from tracer.trace.format import CAP_OUTCOMES, PHASES, WORKLOAD_PHASES, Trace

# The capability:cap_capable tracepoint does not carry the check's options, so it cannot
# drop the checks the kernel makes with CAP_OPT_NOAUDIT. The one that matters in practice is
# memory overcommit accounting (__vm_enough_memory -> CAP_SYS_ADMIN), reached from every
# syscall that maps, grows or copies accountable memory. A grant there is not evidence of
# need. (The kprobe source drops all no-audit checks in the kernel instead.)
ADVISORY_CHECKS = {
    "CAP_SYS_ADMIN": frozenset(
        {
            "mmap",
            "mremap",
            "brk",
            "mprotect",
            "munmap",
            "shmget",
            "shmat",
            "execve",
            "execveat",
            "clone",
            "clone3",
            "fork",
            "vfork",
            "write",
            "pwrite64",
            "writev",
            "pwritev",
            "pwritev2",
            "fallocate",
            "memfd_create",
        }
    ),
}


# What a capability check says about the workload's need (CapabilityEvidence.verdict).
USED = "used"
REQUIRED_BY_CALL = "required by the call"
ADVISORY = "advisory"
NOT_REQUIRED = "not required"
RUNTIMES_OWN = "container runtime's own"
NOT_HELD = "not the workload's (a capability it did not hold: checked under other credentials)"
# Verdicts that count as evidence of need when runs are counted (merge).
EVIDENCE_OF_NEED = frozenset({USED, REQUIRED_BY_CALL})


@dataclass(frozen=True)
class CapabilityEvidence:
    capability: str
    syscall: str
    phase: str
    outcome: str
    count: int
    held: frozenset[str] | None = None  # the process's effective capabilities, where the trace says

    @property
    def verdict(self) -> str:
        if self.phase not in WORKLOAD_PHASES:
            return RUNTIMES_OWN
        if self.outcome == "granted" and self.held is not None and self.capability not in self.held:
            return NOT_HELD
        if self.outcome == "denied_failed":
            return REQUIRED_BY_CALL
        if self.outcome == "granted":
            return ADVISORY if self.syscall in ADVISORY_CHECKS.get(self.capability, ()) else USED
        return NOT_REQUIRED

    def explain(self) -> str:
        what = {
            "granted": f"granted in {self.syscall}",
            "denied_failed": f"denied in {self.syscall}, and {self.syscall} then failed with EPERM/EACCES",
            "denied_other_error": f"denied in {self.syscall}, which failed with another error",
            "denied_no_effect": f"denied in {self.syscall}, which succeeded",
        }[self.outcome]
        return f"{self.capability} {what} ({self.count}x, {self.phase}): {self.verdict}"

    def to_json(self) -> dict:
        return {
            "syscall": self.syscall,
            "phase": self.phase,
            "outcome": self.outcome,
            "count": self.count,
            "verdict": self.verdict,
        }


def capability_evidence(trace: Trace, phases=WORKLOAD_PHASES) -> list[CapabilityEvidence]:
    wanted = {PHASES.index(p) for p in phases}
    effective = (trace.metadata.get("target") or {}).get("effective_capabilities")
    held = frozenset(effective) if isinstance(effective, list) else None
    rows = []
    for (phase, cap, nr, outcome), count in sorted(trace.final.capabilities.items()):
        if phase in wanted and count:
            syscall = syscall_name(trace.arch, nr) or f"syscall_{nr}"
            rows.append(
                CapabilityEvidence(capability_name(cap), syscall, PHASES[phase], CAP_OUTCOMES[outcome], count, held)
            )
    return rows


def infer_capabilities(evidence: list[CapabilityEvidence], add_by_hand: list[str] = ()) -> dict:
    """The capabilities.json document: add = used (plus any added by hand), with evidence."""
    by_cap: dict[str, list[CapabilityEvidence]] = defaultdict(list)
    for row in evidence:
        by_cap[row.capability].append(row)
    add_by_hand = [parse_capability(cap) for cap in add_by_hand]
    used = {cap for cap, rows in by_cap.items() if any(r.verdict == USED for r in rows)}
    needed = sorted(used | set(add_by_hand))
    failed_without = {
        cap: [r.to_json() for r in rows if r.verdict == REQUIRED_BY_CALL]
        for cap, rows in sorted(by_cap.items())
        if cap not in needed
    }
    return {
        "add": needed,
        "drop": ["ALL"],
        "evidence": {cap: [r.to_json() for r in by_cap[cap]] or [{"added_by_hand": True}] for cap in needed},
        "failed_without": {cap: rows for cap, rows in failed_without.items() if rows},
        "not_required": {
            cap: [r.to_json() for r in rows]
            for cap, rows in sorted(by_cap.items())
            if cap not in needed and not failed_without.get(cap)
        },
    }
