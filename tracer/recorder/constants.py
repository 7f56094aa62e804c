"""The one source of the numbers the BPF program and the loader share.

The trace format names phases, results, capability outcomes and lost-counter reasons
(`tracer.trace`); their positions in those tuples are the indices the kernel counts with.
`bpf_defines()` turns them into the `-D` flags the program is compiled with, so the C side
never spells a number that Python could disagree with. The register frame's layout (where
the syscall number and its arguments sit in `struct pt_regs`) is the architecture's syscall
ABI, the same on every kernel: it is spelled here, per machine, not read from headers.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from tracer.syscalls import MAX_SYSCALL_NR
from tracer.trace.format import CAP_OUTCOMES, KERNEL_LOST_REASONS, PHASES, RESULTS

# Bytes of a connect() destination kept: an IPv6 address, or the start of an AF_UNIX path.
CONNECT_ADDR_LEN = 64


@dataclass(frozen=True)
class RegisterFrame:
    """Offsets in struct pt_regs of the syscall number and of arguments 0..5."""

    nr_offset: int
    nr_size: int
    arg_offsets: tuple[int, int, int, int, int, int]
    clone_flags_arg: int = 0


REGISTER_FRAMES = {
    # orig_ax; di, si, dx, r10, r8, r9 (arch/x86/include/asm/ptrace.h, the ptrace user_regs order)
    "x86_64": RegisterFrame(15 * 8, 8, (14 * 8, 13 * 8, 12 * 8, 7 * 8, 9 * 8, 8 * 8)),
    # syscallno after regs[31], sp, pc, pstate, orig_x0; x0 is overwritten by the return
    # value at exit, so argument 0 is orig_x0 (arch/arm64/include/asm/ptrace.h)
    "aarch64": RegisterFrame(35 * 8, 4, (34 * 8, 1 * 8, 2 * 8, 3 * 8, 4 * 8, 5 * 8)),
}


def register_frame(machine: str | None = None) -> RegisterFrame:
    machine = machine or platform.machine()
    try:
        return REGISTER_FRAMES[machine]
    except KeyError:
        raise RuntimeError(f"the recorder does not know the register frame of {machine!r}") from None


def _indexed(prefix: str, names: tuple[str, ...]) -> dict[str, int]:
    return {f"{prefix}_{name.upper()}": index for index, name in enumerate(names)}


def bpf_defines(machine: str | None = None) -> dict[str, int]:
    """Every shared constant, by the macro name the program uses."""
    frame = register_frame(machine)
    return {
        **_indexed("PHASE", PHASES),
        **_indexed("RESULT", RESULTS),
        **_indexed("OUTCOME", CAP_OUTCOMES),
        **_indexed("LOST", KERNEL_LOST_REASONS),
        "MAX_NR": MAX_SYSCALL_NR,
        "N_PHASES": len(PHASES),
        "N_RESULTS": len(RESULTS),
        "N_LOST": len(KERNEL_LOST_REASONS),
        "REGS_NR_OFFSET": frame.nr_offset,
        "REGS_NR_SIZE": frame.nr_size,
        **{f"REGS_ARG{i}_OFFSET": offset for i, offset in enumerate(frame.arg_offsets)},
        "CLONE_FLAGS_ARG": frame.clone_flags_arg,
        "CONNECT_ADDR_LEN": CONNECT_ADDR_LEN,
    }


def bpf_cflags(machine: str | None = None) -> list[str]:
    return [f"-D{name}={value}" for name, value in bpf_defines(machine).items()]
