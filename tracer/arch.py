"""CPU architectures: every name the tool meets for one, in one table.

The same architecture is spelled differently by each source the tool reads or writes:
`uname -m` (trace metadata), the OCI runtime spec and libseccomp (`SCMP_ARCH_X86_64` in
seccomp.json; `x86_64` for `seccomp_arch_resolve_name`), the kernel's audit records
(`arch=c000003e`, AUDIT_ARCH_* in include/uapi/linux/audit.h) and Docker's default
profile (`includes.arches`: `amd64`). Each lookup below reads this one table.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    oci: str  # OCI runtime-spec / libseccomp constant name: SCMP_ARCH_X86_64
    libseccomp: str  # the name seccomp_arch_resolve_name() takes: x86_64
    machine: str | None  # `uname -m` of a kernel that runs it natively; None for compat-only
    audit: int | None  # AUDIT_ARCH_* as in an audit record's arch= field (x32 shares x86_64's)
    docker: str  # Docker's profile (moby/profiles/seccomp) `arches` name: amd64


ARCHITECTURES = (
    Arch("SCMP_ARCH_X86_64", "x86_64", "x86_64", 0xC000003E, "amd64"),
    Arch("SCMP_ARCH_AARCH64", "aarch64", "aarch64", 0xC00000B7, "arm64"),
    Arch("SCMP_ARCH_PPC64LE", "ppc64le", "ppc64le", 0xC0000015, "ppc64le"),
    Arch("SCMP_ARCH_S390X", "s390x", "s390x", 0x80000016, "s390x"),
    Arch("SCMP_ARCH_RISCV64", "riscv64", "riscv64", 0xC00000F3, "riscv64"),
    # Compat ABIs: seen in audit records and in Docker's rules, never a profile's native arch.
    Arch("SCMP_ARCH_X86", "x86", None, 0x40000003, "x86"),
    Arch("SCMP_ARCH_X32", "x32", None, None, "x32"),
    Arch("SCMP_ARCH_ARM", "arm", None, 0x40000028, "arm"),
)

_BY_OCI = {arch.oci: arch for arch in ARCHITECTURES}
_BY_MACHINE = {arch.machine: arch for arch in ARCHITECTURES if arch.machine}
_BY_AUDIT = {arch.audit: arch for arch in ARCHITECTURES if arch.audit is not None}


class UnknownArchitecture(ValueError):
    pass


def by_oci(name: str) -> Arch | None:
    return _BY_OCI.get(name)


def by_audit(audit_arch: int) -> Arch | None:
    return _BY_AUDIT.get(audit_arch)


def docker_name(oci_arch: str) -> str:
    """Docker's name for an OCI architecture (amd64 for SCMP_ARCH_X86_64); unknown ones unchanged."""
    arch = _BY_OCI.get(oci_arch)
    return arch.docker if arch else oci_arch


def native() -> Arch:
    """The architecture this kernel runs natively (`uname -m`)."""
    machine = platform.machine()
    try:
        return _BY_MACHINE[machine]
    except KeyError:
        raise UnknownArchitecture(f"unsupported machine {machine!r}") from None


def native_oci_arch() -> str:
    return native().oci
