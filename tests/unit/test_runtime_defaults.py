"""containerd's own seccomp defaults (RuntimeDefault under containerd), one per version, as
committed in tracer/profile/data/ by scripts/gen-runtime-defaults from containerd's
contrib/seccomp.DefaultProfile (see tools/containerd-seccomp.md).

Offline: these read the committed files only. The generator is what proves each file equal
to containerd's output for many capability sets (its sidecar records the counts); here are
the properties a user relies on, evaluated the way seccomp-tracer evaluates Docker's format
(tracer.profile.filter.filter_from_docker).
"""

from __future__ import annotations

import json
import random
import re

import pytest

from support.paths import REPO
from tracer.capabilities import CAPABILITY_NAMES
from tracer.profile.filter import filter_from_docker
from tracer.risk.attack import RUNTIME_DEFAULT_CAPABILITIES

DATA = REPO / "tracer" / "profile" / "data"
ORACLES = REPO / "tools" / "containerd-seccomp"
DOCKER = json.loads((DATA / "docker-default-seccomp.json").read_text())
X86, ARM = "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"
ARCHES = (X86, ARM)
ALL = list(CAPABILITY_NAMES)
NO_ADMIN = [cap for cap in ALL if cap != "CAP_SYS_ADMIN"]
IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")
CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17
ENOSYS = 38
AF_INET, AF_ALG, AF_VSOCK = 2, 38, 40


def oracle_versions() -> dict[str, str]:
    """containerd line (tools/containerd-seccomp/go-<line>.mod) -> the version that file pins."""
    versions = {}
    for go_mod in sorted(ORACLES.glob("go-*.mod")):
        pin = r"^(?:require)?\s+github\.com/containerd/containerd(?:/v2)? v(\S+)$"
        match = re.search(pin, go_mod.read_text(), re.M)
        assert match, f"{go_mod} requires no containerd module directly"
        versions[go_mod.name.removeprefix("go-").removesuffix(".mod")] = match[1]
    return versions


VERSIONS = oracle_versions()


def load(version: str) -> dict:
    return json.loads((DATA / f"containerd-{version}-default-seccomp.json").read_text())


def source(version: str) -> dict:
    return json.loads((DATA / f"containerd-{version}-default-seccomp.source.json").read_text())


def cap_sets(seed: str, n: int = 60) -> list[list[str]]:
    rng = random.Random(seed)
    return [
        [],
        ALL,
        NO_ADMIN,
        list(RUNTIME_DEFAULT_CAPABILITIES),
        *(rng.sample(ALL, rng.randint(0, len(ALL))) for _ in range(n)),
    ]


def test_each_line_the_tests_meet_has_an_oracle_and_a_file():
    assert set(VERSIONS) == {"1.6.20", "1.6", "1.7", "2"}
    assert VERSIONS["1.6.20"] == "1.6.20"  # Debian 12's containerd
    assert VERSIONS["1.6"].startswith("1.6.") and VERSIONS["1.7"].startswith("1.7.") and VERSIONS["2"].startswith("2.")
    written = {
        p.name.removeprefix("containerd-").removesuffix("-default-seccomp.json")
        for p in DATA.glob("containerd-*-default-seccomp.json")
    }
    assert written == set(VERSIONS.values())


@pytest.mark.parametrize("line", sorted(VERSIONS))
def test_provenance_names_the_module_its_go_sum_line_and_the_check(line):
    version, meta = VERSIONS[line], source(VERSIONS[line])
    module = "github.com/containerd/containerd/v2" if version.startswith("2.") else "github.com/containerd/containerd"
    assert (meta["module"], meta["version"]) == (module, f"v{version}")
    assert meta["oracle"] == f"tools/containerd-seccomp/go-{line}.mod"
    assert meta["function"] == f"{module}/contrib/seccomp.DefaultProfile"
    assert meta["go_sum"].startswith(f"{module} v{version} h1:")
    assert meta["go_sum"] in (ORACLES / f"go-{line}.sum").read_text().splitlines()
    assert meta["generated_by"] == "scripts/gen-runtime-defaults" and (REPO / meta["generated_by"]).is_file()
    assert meta["checked"]["random_sets"] >= 300 and meta["checked"]["capability_sets"] >= 305
    assert set(meta["checked"]["comparisons"]) >= {"amd64 kernel host", "arm64 kernel host"}
    assert meta["known_capabilities"] == ALL  # containerd's pkg/cap.Known() is the kernel's list
    assert meta["containerd_default_capabilities"] == list(RUNTIME_DEFAULT_CAPABILITIES)


@pytest.mark.parametrize("version", sorted(VERSIONS.values()))
def test_the_file_is_in_dockers_format_and_nothing_more(version):
    profile = load(version)
    assert set(profile) <= set(DOCKER) and {"defaultAction", "archMap", "syscalls"} <= set(profile)
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "defaultErrnoRet" not in profile  # containerd leaves it unset (runc: EPERM)
    assert [e["architecture"] for e in profile["archMap"]] == [X86, ARM]
    for rule in profile["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args", "includes", "excludes"}, rule
        assert set(rule.get("includes", {})) <= {"caps", "arches", "minKernel"}
        assert set(rule.get("excludes", {})) <= {"caps", "arches"}
        assert set(rule.get("includes", {}).get("caps", [])) | set(rule.get("excludes", {}).get("caps", [])) <= set(ALL)
        assert set(rule.get("includes", {}).get("arches", [])) <= {"amd64", "arm64"}


@pytest.mark.parametrize("version", sorted(VERSIONS.values()))
def test_io_uring_is_allowed_by_1_6_and_1_7_and_refused_by_2_for_every_capability_set(version):
    profile = load(version)
    named = {name for rule in profile["syscalls"] for name in rule["names"]}
    if version.startswith("2."):
        # No rule names them, so no capability set or architecture can allow them (containerd PR #9320).
        assert not named & set(IO_URING)
    else:
        for rule in profile["syscalls"]:
            if set(rule["names"]) & set(IO_URING):
                assert rule["action"] == "SCMP_ACT_ALLOW" and not {"args", "includes", "excludes"} & set(rule)
    for arch in ARCHES:
        for caps in cap_sets(f"io_uring {version} {arch}"):
            runtime = filter_from_docker(profile, caps, arch)
            for name in IO_URING:
                assert runtime.allows(name) is not version.startswith("2."), (version, arch, name, caps)


@pytest.mark.parametrize("version", sorted(VERSIONS.values()))
def test_clone_is_masked_without_cap_sys_admin_and_not_with_it(version):
    profile = load(version)
    for arch in ARCHES:
        for caps in cap_sets(f"clone {version} {arch}"):
            runtime = filter_from_docker(profile, caps, arch)
            admin = "CAP_SYS_ADMIN" in caps
            assert runtime.allows("clone", {0: SIGCHLD})  # fork
            assert runtime.allows("clone", {0: SIGCHLD | CLONE_NEWUSER}) is admin
            assert runtime.allows("clone", {0: CLONE_NEWNET}) is admin
            clone3 = runtime.verdict("clone3")
            assert (clone3.action, clone3.errno) == (("SCMP_ACT_ALLOW", None) if admin else ("SCMP_ACT_ERRNO", ENOSYS))
            assert runtime.allows("unshare") is admin and runtime.allows("mount") is admin


@pytest.mark.parametrize("version", sorted(VERSIONS.values()))
def test_capabilities_open_what_containerd_opens_for_them(version):
    profile = load(version)
    for arch in ARCHES:
        none = filter_from_docker(profile, [], arch)
        for cap, name in (
            ("CAP_SYS_PTRACE", "kcmp"),
            ("CAP_SYS_MODULE", "init_module"),
            ("CAP_SYS_BOOT", "reboot"),
            ("CAP_SYS_TIME", "settimeofday"),
            ("CAP_BPF", "bpf"),
            ("CAP_PERFMON", "perf_event_open"),
            ("CAP_SYS_CHROOT", "chroot"),
            ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
        ):
            assert not none.allows(name) and filter_from_docker(profile, [cap], arch).allows(name), (cap, name)


@pytest.mark.parametrize("version", sorted(VERSIONS.values()))
def test_ptrace_from_kernel_4_8_and_architecture_specific_calls(version):
    profile = load(version)
    for arch in ARCHES:
        assert filter_from_docker(profile, [], arch).allows("ptrace")  # kernel unknown: a current one
        assert filter_from_docker(profile, [], arch, kernel=(4, 8)).allows("ptrace")
        assert not filter_from_docker(profile, [], arch, kernel=(4, 7)).allows("ptrace")
        assert filter_from_docker(profile, ["CAP_SYS_PTRACE"], arch, kernel=(4, 7)).allows("ptrace")
    x86, arm = filter_from_docker(profile, [], X86), filter_from_docker(profile, [], ARM)
    assert x86.allows("arch_prctl") and x86.allows("modify_ldt") and not arm.allows("arch_prctl")
    assert arm.allows("set_tls") and arm.allows("cacheflush") and not x86.allows("set_tls")
    assert x86.architectures == (X86, "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    assert set(arm.architectures) == {ARM, "SCMP_ARCH_ARM"}


@pytest.mark.parametrize("version", sorted(VERSIONS.values()))
def test_socket_families_the_newer_releases_refuse(version):
    runtime = filter_from_docker(load(version), list(RUNTIME_DEFAULT_CAPABILITIES), X86)
    assert runtime.allows("socket", {0: AF_INET})
    filtered = not version.startswith("1.6.")  # 1.7.36 and 2.x: no AF_ALG, no AF_VSOCK
    assert runtime.allows("socket", {0: AF_ALG}) is not filtered
    assert runtime.allows("socket", {0: AF_VSOCK}) is not filtered
