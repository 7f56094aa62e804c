"""The kernel side of a recording: load the BPF program for one cgroup and read its maps.

Deliberately thin (bcc's syscount.py and capable.py are the model): the program aggregates
everything in per-CPU counters; here we only read them into numpy arrays.
"""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import numpy as np

from tracer.recorder.bcc import import_bcc
from tracer.recorder.constants import CONTROL, bpf_cflags
from tracer.syscalls import MAX_SYSCALL_NR
from tracer.trace import KERNEL_LOST_REASONS, PHASES, RESULTS, Snapshot

BPF_SOURCE = Path(__file__).with_name("recorder.bpf.c")
TRACEFS = Path("/sys/kernel/tracing")
BPF_PROG_INFO_SIZE, RECURSION_MISSES_OFFSET = 256, 208  # uapi struct bpf_prog_info


def capability_tracepoint_available() -> bool:
    for root in (TRACEFS, Path("/sys/kernel/debug/tracing")):
        if (root / "events/capability/cap_capable").is_dir():
            return True
    return False


class KernelRecorder:
    """The BPF program attached for one cgroup id, and readers for its maps."""

    def __init__(self, cgroup_id: int, *, gated: bool, capability_source: str = "auto", cap_map_entries: int = 16384):
        if capability_source == "auto":
            capability_source = "tracepoint" if capability_tracepoint_available() else "kprobe"
        self.capability_source = capability_source
        self.gated = gated
        bcc = import_bcc()
        cflags = [
            f"-DTARGET_CGROUP_ID={cgroup_id}ULL",
            f"-DGATE_RUNC={int(gated)}",
            f"-DCAP_KPROBE={int(capability_source == 'kprobe')}",
            f"-DCAP_MAP_ENTRIES={cap_map_entries}",
            *bpf_cflags(),
        ]
        self.bpf = bcc.BPF(src_file=str(BPF_SOURCE).encode(), cflags=cflags)  # attaches tracepoints
        if capability_source == "kprobe":
            self.bpf.attach_kprobe(event=b"cap_capable", fn_name=b"cap_capable_entry")
            self.bpf.attach_kretprobe(event=b"cap_capable", fn_name=b"cap_capable_return")
        self._lib = bcc.libbcc.lib
        self._ncpus = len(bcc.utils.get_possible_cpus())
        self._control = self.bpf[b"control"]
        self._set_control(CONTROL["armed"], 0 if gated else 1)
        self._set_control(CONTROL["execed"], 0 if gated else 1)
        self.set_phase("startup")
        self._set_control(CONTROL["attached"], 1)

    def _set_control(self, slot: int, value: int) -> None:
        self._control[ctypes.c_int(slot)] = ctypes.c_uint64(value)

    def set_phase(self, phase: str) -> None:
        self._set_control(CONTROL["phase"], PHASES.index(phase))

    @property
    def armed(self) -> bool:
        return bool(self._control[ctypes.c_int(CONTROL["armed"])].value)

    def _read_percpu_array(self, name: bytes, entries: int) -> np.ndarray:
        """Sum a per-CPU u64 array over CPUs with one batch lookup syscall."""
        table = self.bpf[name]
        keys = np.zeros(entries, np.uint32)
        values = np.zeros((entries, self._ncpus), np.uint64)
        count = ctypes.c_uint32(entries)
        out_batch = ctypes.c_uint32(0)
        self._lib.bpf_lookup_batch(
            table.map_fd, None, ctypes.byref(out_batch),
            keys.ctypes.data_as(ctypes.c_void_p), values.ctypes.data_as(ctypes.c_void_p), ctypes.byref(count),
        )
        if count.value != entries:  # no batch lookup for arrays before kernel 5.6: one by one
            return self._read_percpu_array_slowly(table, entries)
        total = np.zeros(entries, np.uint64)
        total[keys[: count.value]] = values[: count.value].sum(axis=1)
        return total

    def _read_percpu_array_slowly(self, table, entries: int) -> np.ndarray:
        return np.array([sum(table[ctypes.c_int(i)]) for i in range(entries)], np.uint64)

    def read(self, t: float) -> tuple[Snapshot, dict[str, int]]:
        flat = self._read_percpu_array(b"syscall_counts", len(PHASES) * MAX_SYSCALL_NR * len(RESULTS))
        capabilities = {
            (k.phase, k.cap, k.nr, k.outcome): int(v.value)
            for k, v in self.bpf[b"cap_checks"].items()
        }
        lost_counts = self._read_percpu_array(b"lost", len(KERNEL_LOST_REASONS))
        lost = {reason: int(n) for reason, n in zip(KERNEL_LOST_REASONS, lost_counts)}
        lost["bpf_recursion_misses"] = self.recursion_misses()
        snapshot = Snapshot(t, flat.reshape(len(PHASES), MAX_SYSCALL_NR, len(RESULTS)), capabilities)
        return snapshot, lost

    def recursion_misses(self) -> int:
        """Events the kernel did not run our programs for because another BPF program was
        already running on that CPU (e.g. a capability check inside an interrupt that came
        during our sys_exit program): struct bpf_prog_info.recursion_misses, kernel 5.12+."""
        info = ctypes.create_string_buffer(BPF_PROG_INFO_SIZE)
        total = 0
        for function in self.bpf.funcs.values():
            size = ctypes.c_uint32(BPF_PROG_INFO_SIZE)
            if self._lib.bpf_obj_get_info_by_fd(function.fd, info, ctypes.byref(size)) == 0 and size.value >= 216:
                total += struct.unpack_from("Q", info.raw, RECURSION_MISSES_OFFSET)[0]
        return total

    def unattributed_capability_checks(self) -> int:
        """Threads whose checks never reached a sys_exit (they exited inside a syscall)."""
        return len(self.bpf[b"pending"])

    def close(self) -> None:
        self.bpf.cleanup()
