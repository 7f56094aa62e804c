"""The kernel side of a recording: load the BPF program for one cgroup and read its maps.

Deliberately thin (bcc's syscount.py and capable.py are the model): the program aggregates
everything in per-CPU counters and bounded hash maps; here we only read them into numpy
arrays and argument rows, and name the descriptors that ioctls went to.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import struct
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from tracer.arch import native_oci_arch
from tracer.errors import MachineError
from tracer.recorder.bcc import import_bcc
from tracer.recorder.btf import BtfAttachError, attach_tp_btf, tp_btf_available
from tracer.recorder.constants import CONNECT_ADDR_LEN, bpf_cflags
from tracer.recorder.descriptors import DescriptorNames
from tracer.syscalls import MAX_SYSCALL_NR, syscall_name
from tracer.trace.arguments import RECORDED_SYSCALLS, ArgumentRow, Arguments, summed
from tracer.trace.format import CAP_OUTCOMES, KERNEL_LOST_REASONS, PHASES, RESULTS, Snapshot

BPF_SOURCE = Path(__file__).with_name("recorder.bpf.c")
TRACEFS = Path("/sys/kernel/tracing")
BPF_PROG_INFO_SIZE, RECURSION_MISSES_OFFSET = 256, 208  # uapi struct bpf_prog_info
CLONE3_UNREADABLE = 1  # values[2] of a clone3 row whose clone_args could not be read
FAMILY_UNREADABLE = 0xFFFF


def capability_tracepoint_available() -> bool:
    for root in (TRACEFS, Path("/sys/kernel/debug/tracing")):
        if (root / "events/capability/cap_capable").is_dir():
            return True
    return False


def task_registers_available() -> bool:
    """bpf_task_pt_regs() and bpf_get_current_task_btf() (kernel 5.15+, BTF): exits are then
    counted at sched_process_exit, and no program runs at any syscall's entry."""
    release = tuple(int(part) for part in platform.release().split(".")[:2] if part.isdigit())
    return release >= (5, 15) and Path("/sys/kernel/btf/vmlinux").exists()


class Settings(ctypes.Structure):
    """struct settings in recorder.bpf.c: written by the loader only."""

    _fields_ = [
        ("load", ctypes.c_uint32),
        ("attached", ctypes.c_uint32),
        ("pod_cgroup_id", ctypes.c_uint64),
        ("pod_level", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


POD_SLOTS = 16  # leaf cgroups (containers, their restarts, the sandbox) one pod recording tells apart


class KernelRecorder:
    """The BPF program attached for one cgroup id, and readers for its maps."""

    def __init__(
        self,
        cgroup_id: int,
        *,
        gated: bool,
        gate_from: str = "runtime",
        pod_slots: int = 0,
        capability_source: str = "auto",
        cap_map_entries: int = 16384,
        arg_map_entries: int = 8192,
        connect_map_entries: int = 4096,
        without_btf: bool = False,
    ):
        """without_btf: load what a kernel without BTF gets (a plain raw tracepoint reading the
        registers through the helper, exit/exit_group at their entry tracepoints).
        gate_from: the gate's phase at the target's first event ("runtime", or "handover"
        for a container attached after its runtime installed its filter).
        pod_slots: >0 loads the pod program (cgroup_id unused): nothing is counted until
        arm_pod() names the pod's cgroup; each leaf cgroup under it gets a slot."""
        if gate_from not in ("runtime", "handover"):
            raise ValueError(f"a gate opens from runtime or handover, not {gate_from!r}")
        if capability_source == "auto":
            capability_source = "tracepoint" if capability_tracepoint_available() else "kprobe"
        self.capability_source = capability_source
        self.gated = gated
        self.slots = max(pod_slots, 1)
        bcc = import_bcc()
        cflags = [
            f"-DTARGET_CGROUP_ID={cgroup_id}ULL",
            f"-DPOD_MODE={int(pod_slots > 0)}",
            f"-DN_SLOTS={max(pod_slots, 1)}",
            f"-DGATE_RUNC={int(gated)}",
            f"-DGATE_FIRST_PHASE={PHASES.index(gate_from)}",
            f"-DCAP_KPROBE={int(capability_source == 'kprobe')}",
            f"-DEXIT_FROM_TASK_REGS={int(task_registers_available() and not without_btf)}",
            f"-DCAP_MAP_ENTRIES={cap_map_entries}",
            f"-DARG_MAP_ENTRIES={arg_map_entries}",
            f"-DCONNECT_MAP_ENTRIES={connect_map_entries}",
            *bpf_cflags(),
        ]
        self.syscall_exit = None
        self.regs_from_btf = tp_btf_available() and not without_btf
        try:
            self.bpf = self._load(bcc, cflags)
        except BtfAttachError:  # an older kernel: the plain raw tracepoint and the helper
            self.regs_from_btf = False
            self.bpf = self._load(bcc, cflags)
        if capability_source == "kprobe":
            self.bpf.attach_kprobe(event=b"cap_capable", fn_name=b"cap_capable_entry")
            self.bpf.attach_kretprobe(event=b"cap_capable", fn_name=b"cap_capable_return")
        self._lib = bcc.libbcc.lib
        self._ncpus = len(bcc.utils.get_possible_cpus())
        self.arch = native_oci_arch()
        self.descriptors = DescriptorNames()
        self._watch_descriptors()
        self._settings = Settings(load=0, attached=0, pod_cgroup_id=0, pod_level=0)
        self._write_settings(attached=1)

    def _load(self, bcc, cflags: list[str]):
        """Compile (which attaches the tracepoint programs), then attach syscall_exit."""
        bpf = bcc.BPF(src_file=str(BPF_SOURCE).encode(), cflags=[*cflags, f"-DTP_BTF={int(self.regs_from_btf)}"])
        try:
            if self.regs_from_btf:
                self.syscall_exit = attach_tp_btf(bpf, b"syscall_exit", b"sys_exit")
            else:
                bpf.attach_raw_tracepoint(tp=b"sys_exit", fn_name=b"syscall_exit")
        except BaseException:
            bpf.cleanup()
            raise
        return bpf

    # ------------------------------------------------------------ loader -> program

    def _write_settings(self, **fields) -> None:
        for name, value in fields.items():
            setattr(self._settings, name, value)
        self.bpf[b"settings"][ctypes.c_int(0)] = self._settings

    def set_phase(self, phase: str) -> None:
        if phase not in ("startup", "load"):
            raise ValueError(f"the loader switches between startup and load, not {phase!r}")
        self._write_settings(load=int(phase == "load"))

    def arm_pod(self, cgroup_id: int, level: int) -> None:
        """Count every task under this cgroup (the pod's) from now on; `level` is its depth
        below the cgroup2 root. Every CPU's cached answer is asked again."""
        self._write_settings(pod_cgroup_id=cgroup_id, pod_level=level)
        generation = self.bpf[b"generation"]
        generation[ctypes.c_int(0)] = ctypes.c_uint64(generation[ctypes.c_int(0)].value + 1)

    def container_slots(self) -> dict[int, int]:
        """Pod mode: leaf cgroup id -> slot, for every leaf cgroup the kernel has seen a task of."""
        return {int(key.value): int(slot.value) for key, slot in self.bpf[b"slots"].items()}

    def gate_phase(self, slot: int = 0) -> str:
        return PHASES[self.bpf[b"state"][ctypes.c_int(slot)].gate_phase]

    def seen(self, slot: int = 0) -> bool:
        """Whether any syscall of the slot has returned since the program was loaded."""
        return bool(self.bpf[b"state"][ctypes.c_int(slot)].seen)

    def workload_started(self, slot: int = 0) -> bool:
        """Whether the slot's workload has exec'd (gated), or anything of it ran (not gated)."""
        return self.gate_phase(slot) == "startup" if self.gated else self.seen(slot)

    @property
    def armed(self) -> bool:
        """Whether calls run under the container's filter, or the workload's exec began."""
        return not self.gated or self.bpf[b"state"][ctypes.c_int(0)].gate_phase >= PHASES.index("handover")

    # ------------------------------------------------------------ descriptors of ioctls

    def _watch_descriptors(self) -> None:
        """Name the descriptor of each new ioctl row the moment the program counts it, while
        the process still holds it; the program hands us the row's key through a ring buffer."""
        key_type = self.bpf[b"arg_counts"].Key

        def on_event(_ctx, data, size):
            key = key_type.from_buffer_copy(ctypes.string_at(data, size))
            self.descriptors.note(bytes(key), key.tgid, key.values[1])
            return 0

        self.bpf[b"descriptors"].open_ring_buffer(on_event)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._poll_descriptors, name="descriptors", daemon=True)
        self._watcher.start()

    def _poll_descriptors(self) -> None:
        while not self._stop.is_set():
            self.bpf.ring_buffer_poll(100)

    # ------------------------------------------------------------ program -> loader

    def _read_percpu_array(self, name: bytes, entries: int) -> np.ndarray:
        """Sum a per-CPU u64 array over CPUs with one batch lookup syscall."""
        table = self.bpf[name]
        keys = np.zeros(entries, np.uint32)
        values = np.zeros((entries, self._ncpus), np.uint64)
        count = ctypes.c_uint32(entries)
        out_batch = ctypes.c_uint32(0)
        self._lib.bpf_lookup_batch(
            table.map_fd,
            None,
            ctypes.byref(out_batch),
            keys.ctypes.data_as(ctypes.c_void_p),
            values.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(count),
        )
        if count.value != entries:  # no batch lookup for arrays before kernel 5.6: one by one
            return self._read_percpu_array_slowly(table, entries)
        total = np.zeros(entries, np.uint64)
        total[keys[: count.value]] = values[: count.value].sum(axis=1)
        return total

    def _read_percpu_array_slowly(self, table, entries: int) -> np.ndarray:
        return np.array([sum(table[ctypes.c_int(i)]) for i in range(entries)], np.uint64)

    def read(self, t: float) -> tuple[Snapshot, dict[str, int]]:
        """The target's counters (slot 0) and the lost counters."""
        snapshots, lost = self.read_slots(t, [0])
        return snapshots[0], lost

    def read_slots(self, t: float, slots) -> tuple[dict[int, Snapshot], dict[str, int]]:
        """The counters of each slot asked for (one read of the kernel's arrays), and the lost counters."""
        flat = self._read_percpu_array(b"syscall_counts", self.slots * len(PHASES) * MAX_SYSCALL_NR * len(RESULTS))
        by_slot = flat.reshape(self.slots, len(PHASES), MAX_SYSCALL_NR, len(RESULTS))
        kernel_rows = [
            (k.slot, (k.phase, k.nr, k.granted, k.denied, k.denied_outcome, int(v.value)))
            for k, v in self.bpf[b"cap_checks"].items()
        ]
        snapshots = {
            slot: Snapshot(
                t, by_slot[slot].copy(), capability_rows(row for row_slot, row in kernel_rows if row_slot == slot)
            )
            for slot in slots
        }
        lost_counts = self._read_percpu_array(b"lost", len(KERNEL_LOST_REASONS))
        lost = {reason: int(n) for reason, n in zip(KERNEL_LOST_REASONS, lost_counts)}
        lost["bpf_recursion_misses"] = self.recursion_misses()
        return snapshots, lost

    def arguments(self, slot: int = 0) -> Arguments:
        """The argument rows of one slot counted so far (cumulative, like the syscall counters)."""
        rows = [
            self._argument_row(key, int(count.value))
            for key, count in self.bpf[b"arg_counts"].items()
            if key.slot == slot
        ]
        rows += [
            self._connect_row(key, int(count.value))
            for key, count in self.bpf[b"connect_counts"].items()
            if key.slot == slot
        ]
        return Arguments(RECORDED_SYSCALLS, summed(row for row in rows if row is not None))

    def _argument_row(self, key, count: int) -> ArgumentRow | None:
        syscall = syscall_name(self.arch, key.nr)
        if syscall not in RECORDED_SYSCALLS:
            return None
        values = list(key.values)
        if syscall == "clone3":
            values = [None if values[2] == CLONE3_UNREADABLE else values[0]]
        elif syscall == "ioctl":
            values = [values[0], self.descriptors.name(bytes(key), key.tgid, values[1])]
        else:
            values = values[: {"socket": 3, "socketpair": 3}.get(syscall, 1)]
        return ArgumentRow(syscall, PHASES[key.phase], tuple(values), key.err, count)

    def _connect_row(self, key, count: int) -> ArgumentRow:
        # An unreadable sockaddr (a bad pointer: the call failed with EFAULT) has family 0.
        family = 0 if key.family == FAMILY_UNREADABLE else key.family
        address, port = connect_destination(family, bytes(key.addr)[: key.path_length or CONNECT_ADDR_LEN], key.port)
        return ArgumentRow("connect", PHASES[key.phase], (family, address, port), key.err, count)

    def recursion_misses(self) -> int:
        """Events the kernel did not run our programs for because another BPF program was
        already running on that CPU (e.g. a capability check inside an interrupt that came
        during our sys_exit program): struct bpf_prog_info.recursion_misses, kernel 5.12+."""
        info = ctypes.create_string_buffer(BPF_PROG_INFO_SIZE)
        total = 0
        fds = [function.fd for function in self.bpf.funcs.values()]
        if self.syscall_exit is not None:
            fds.append(self.syscall_exit.fd)
        for fd in fds:
            size = ctypes.c_uint32(BPF_PROG_INFO_SIZE)
            if self._lib.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) == 0 and size.value >= 216:
                total += struct.unpack_from("Q", info.raw, RECURSION_MISSES_OFFSET)[0]
        return total

    def unattributed_capability_checks(self) -> int:
        """Threads whose checks never reached a sys_exit (they exited inside a syscall)."""
        return len(self.bpf[b"pending"])

    def close(self) -> None:
        self._stop.set()
        self._watcher.join()
        if self.syscall_exit is not None:
            self.syscall_exit.close()
        self.bpf.cleanup()


def load_kernel_recorder(cgroup_id: int, **options) -> KernelRecorder:
    """The BPF program (KernelRecorder's options), or MachineError with bcc's reason on one line."""
    with _bcc_output_captured() as captured_text:
        try:
            return KernelRecorder(cgroup_id, **options)
        except Exception as err:  # noqa: BLE001 (bcc raises plain Exception for every failure)
            reasons = [line.strip() for line in captured_text().splitlines() if line.strip()]
            raise MachineError("BPF", f"the recorder could not be loaded: {reasons[-1] if reasons else err}") from None


@contextlib.contextmanager
def _bcc_output_captured():
    """Collect what libbcc and clang print while the program loads (several lines per failure,
    some on stdout, which belongs to a recorded command); yields a function that returns it.
    Shown on stderr when the load succeeds."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as captured:

        def text() -> str:
            captured.seek(0)
            return captured.read().decode(errors="replace")

        for fd in saved:
            os.dup2(captured.fileno(), fd)
        try:
            yield text
        finally:
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)
        sys.stderr.write(text())  # reached only when the load succeeded


def capability_rows(kernel_rows) -> dict[tuple[int, int, int, int], int]:
    """(phase, cap, nr, outcome) -> syscalls, from the kernel's rows of whole capability sets
    (phase, nr, granted set, denied set, what the denials led to, syscalls)."""
    granted = CAP_OUTCOMES.index("granted")
    rows: dict[tuple[int, int, int, int], int] = {}
    for phase, nr, granted_caps, denied_caps, denied_outcome, count in kernel_rows:
        for cap in range(64):
            for caps, outcome in ((granted_caps, granted), (denied_caps, denied_outcome)):
                if caps >> cap & 1:
                    key = (phase, cap, nr, outcome)
                    rows[key] = rows.get(key, 0) + count
    return rows


def connect_destination(family: int, address: bytes, port_network_order: int) -> tuple[str | None, int | None]:
    """A connect() destination as people write it: ("10.0.0.1", 443), ("/run/x.sock", None)."""
    import socket  # noqa: PLC0415

    port = socket.ntohs(port_network_order)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, address[:4]), port
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, address[:16]), port
    if family == socket.AF_UNIX:
        if address[:1] == b"\0":  # abstract socket name: exactly its length, NULs and all
            return "@" + address[1:].decode(errors="backslashreplace"), None
        return address.split(b"\0", 1)[0].decode(errors="backslashreplace"), None
    return None, None
