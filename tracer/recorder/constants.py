"""The one source of the numbers the BPF program and the loader share.

The trace format names phases, results, capability outcomes and lost-counter reasons
(`tracer.trace`); their positions in those tuples are the indices the kernel counts with.
`bpf_defines()` turns them into the `-D` flags the program is compiled with, so the C side
never spells a number that Python could disagree with.
"""

from __future__ import annotations

from tracer.syscalls import MAX_SYSCALL_NR
from tracer.trace import CAP_OUTCOMES, KERNEL_LOST_REASONS, PHASES, RESULTS

# Slots of the `control` array: written by the loader, read (and some set) by the program.
CONTROL_SLOTS = ("phase", "armed", "pending", "execed", "attached")
CONTROL = {name: index for index, name in enumerate(CONTROL_SLOTS)}


def _indexed(prefix: str, names: tuple[str, ...]) -> dict[str, int]:
    return {f"{prefix}_{name.upper()}": index for index, name in enumerate(names)}


def bpf_defines() -> dict[str, int]:
    """Every shared constant, by the macro name the program uses."""
    return {
        **_indexed("PHASE", PHASES),
        **_indexed("RESULT", RESULTS),
        **_indexed("OUTCOME", CAP_OUTCOMES),
        **_indexed("LOST", KERNEL_LOST_REASONS),
        **_indexed("CONTROL", CONTROL_SLOTS),
        "MAX_NR": MAX_SYSCALL_NR,
        "N_PHASES": len(PHASES),
        "N_RESULTS": len(RESULTS),
        "N_LOST": len(KERNEL_LOST_REASONS),
    }


def bpf_cflags() -> list[str]:
    return [f"-D{name}={value}" for name, value in bpf_defines().items()]
