"""Syscall tables: numbers <-> names for an architecture, from libseccomp itself.

runc builds its filter with libseccomp, so a name that libseccomp resolves is a name runc
accepts; taking the table from the same library (through ctypes, no binding package)
keeps the profile and the runtime in agreement. A number with no name is reported by the
caller, never written as a placeholder.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from tracer.arch import UnknownArchitecture, by_oci, native_oci_arch

# The BPF program counts syscall numbers below this bound; every Linux arch fits today
# (x86_64 tops out in the 460s). Anything at or above it is counted as "out of range".
MAX_SYSCALL_NR = 512


@functools.cache
def _libseccomp() -> ctypes.CDLL:
    path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(path)
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    return lib


def _arch_token(oci_arch: str) -> int:
    arch = by_oci(oci_arch)
    token = _libseccomp().seccomp_arch_resolve_name(arch.libseccomp.encode()) if arch else 0
    if not token:
        raise UnknownArchitecture(f"unknown architecture {oci_arch!r}")
    return token


@functools.cache
def syscall_table(oci_arch: str) -> dict[int, str]:
    """{number: name} for every syscall libseccomp knows on `oci_arch`."""
    lib, token = _libseccomp(), _arch_token(oci_arch)
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    table = {}
    for nr in range(MAX_SYSCALL_NR):
        ptr = lib.seccomp_syscall_resolve_num_arch(token, nr)
        if ptr:
            table[nr] = ctypes.string_at(ptr).decode()
            libc.free(ptr)
    return table


def syscall_name(oci_arch: str, nr: int) -> str | None:
    return syscall_table(oci_arch).get(nr)


def syscall_number(oci_arch: str, name: str) -> int | None:
    """The number of `name`, or None. Negative libseccomp pseudo-numbers mean "not on this arch"."""
    nr = _libseccomp().seccomp_syscall_resolve_name_arch(_arch_token(oci_arch), name.encode())
    return nr if nr >= 0 else None


NR_SCMP_ERROR = -1  # libseccomp: a name it does not know on that architecture (other negatives: known, not there)


def libseccomp_arch_token(oci_arch: str) -> int:
    """libseccomp's token for any runtime-spec architecture (SCMP_ARCH_MIPSEL64 -> mipsel64),
    0 where this libseccomp does not know it."""
    if not oci_arch.startswith("SCMP_ARCH_"):
        return 0
    return _libseccomp().seccomp_arch_resolve_name(oci_arch.removeprefix("SCMP_ARCH_").lower().encode())


def syscall_name_known(name: str, oci_arches) -> bool:
    """Whether libseccomp (so runc) knows `name` on at least one of the architectures; where it
    knows none of them, on the native one."""
    tokens = [token for token in map(libseccomp_arch_token, oci_arches) if token]
    if not tokens:
        tokens = [_arch_token(native_oci_arch())]
    lib = _libseccomp()
    return any(lib.seccomp_syscall_resolve_name_arch(token, name.encode()) != NR_SCMP_ERROR for token in tokens)
