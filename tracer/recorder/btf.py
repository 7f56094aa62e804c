"""Attach a bcc-compiled function as a BTF raw tracepoint (tp_btf) through libbpf.

bcc compiles the program and creates its maps, but loads tracing programs only as fentry
(which needs trampolines) or as plain raw tracepoints. A plain raw tracepoint program must
read the register frame with bpf_probe_read_kernel(); loaded as tp_btf, the verifier knows
the frame is the running kernel's struct pt_regs (from its own BTF, not from headers) and
the same reads become plain loads. That is most of the recorder's cost on the hot path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path

BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_RAW_TP = 23
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


class BtfAttachError(RuntimeError):
    pass


class ProgLoadOpts(ctypes.Structure):
    """libbpf's struct bpf_prog_load_opts (1.0+; `sz` lets newer libbpfs read it)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("attempts", ctypes.c_int),
        ("expected_attach_type", ctypes.c_int),
        ("prog_btf_fd", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_ifindex", ctypes.c_uint32),
        ("kern_version", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("attach_prog_fd", ctypes.c_uint32),
        ("attach_btf_obj_fd", ctypes.c_uint32),
        ("fd_array", ctypes.c_void_p),
        ("func_info", ctypes.c_void_p),
        ("func_info_cnt", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("line_info", ctypes.c_void_p),
        ("line_info_cnt", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_char_p),
    ]


@functools.cache
def _libbpf() -> ctypes.CDLL | None:
    path = ctypes.util.find_library("bpf")
    if not path:
        return None
    lib = ctypes.CDLL(path, use_errno=True)
    lib.bpf_prog_load.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.POINTER(ProgLoadOpts),
    ]
    lib.libbpf_find_vmlinux_btf_id.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.bpf_raw_tracepoint_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return lib


def tp_btf_available() -> bool:
    return VMLINUX_BTF.exists() and _libbpf() is not None


class TpBtfProgram:
    """A loaded and attached tp_btf program: its descriptors, closed by close()."""

    def __init__(self, prog_fd: int, link_fd: int):
        self.fd, self.link_fd = prog_fd, link_fd

    def close(self) -> None:
        for fd in (self.link_fd, self.fd):
            os.close(fd)


def attach_tp_btf(bpf, function: bytes, tracepoint: bytes) -> TpBtfProgram:
    """Load `function` (compiled by bcc, maps already created) as tp_btf on `tracepoint`."""
    lib = _libbpf()
    if lib is None:
        raise BtfAttachError("libbpf is not installed")
    btf_id = lib.libbpf_find_vmlinux_btf_id(tracepoint, BPF_TRACE_RAW_TP)
    if btf_id < 0:
        raise BtfAttachError(f"tracepoint {tracepoint.decode()} not in the kernel's BTF")
    insns = bpf.dump_func(function)
    code = ctypes.create_string_buffer(insns, len(insns))
    log = ctypes.create_string_buffer(1 << 20)
    opts = ProgLoadOpts(
        sz=ctypes.sizeof(ProgLoadOpts),
        expected_attach_type=BPF_TRACE_RAW_TP,
        attach_btf_id=btf_id,
        log_size=len(log),
        log_buf=ctypes.cast(log, ctypes.c_char_p),
    )
    prog_fd = lib.bpf_prog_load(BPF_PROG_TYPE_TRACING, function[:15], b"GPL", code, len(insns) // 8, ctypes.byref(opts))
    if prog_fd < 0:
        opts.log_level = 1  # ask again, with the verifier's reasons
        lib.bpf_prog_load(BPF_PROG_TYPE_TRACING, function[:15], b"GPL", code, len(insns) // 8, ctypes.byref(opts))
        raise BtfAttachError(
            f"the kernel refused {function.decode()} as tp_btf: {os.strerror(-prog_fd)}\n"
            + log.value.decode(errors="replace")[-2000:]
        )
    link_fd = lib.bpf_raw_tracepoint_open(None, prog_fd)
    if link_fd < 0:
        os.close(prog_fd)
        raise BtfAttachError(f"cannot attach {function.decode()} to {tracepoint.decode()}: {os.strerror(-link_fd)}")
    return TpBtfProgram(prog_fd, link_fd)
