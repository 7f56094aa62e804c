"""Attack surface: what a generated profile allows against a baseline (Docker's default)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tracer.arch import docker_name
from tracer.files import read_json

DOCKER_DEFAULT = Path(__file__).with_name("data") / "docker-default-seccomp.json"


def unconditional_allows(docker_profile: dict) -> set[str]:
    """Names Docker's profile allows with no capability, architecture, kernel or argument
    condition (361 on x86_64 for moby's profile of 2026-06)."""
    return {
        name
        for rule in docker_profile.get("syscalls", [])
        if rule.get("action") == "SCMP_ACT_ALLOW" and not rule.get("includes") and not rule.get("excludes") and not rule.get("args")
        for name in rule.get("names", [])
    }


def load_docker_default(path: Path = DOCKER_DEFAULT) -> dict:
    return read_json(path, "a Docker seccomp profile")


def arch_allows(docker_profile: dict, oci_arch: str) -> set[str]:
    """Names Docker's profile allows only on this architecture (e.g. arch_prctl on amd64)."""
    arch = docker_name(oci_arch)
    return {
        name
        for rule in docker_profile.get("syscalls", [])
        if rule.get("action") == "SCMP_ACT_ALLOW" and set(rule.get("includes") or {}) == {"arches"}
        and arch in rule["includes"]["arches"] and not rule.get("excludes") and not rule.get("args")
        for name in rule.get("names", [])
    }


@dataclass
class SurfaceComparison:
    allowed: set[str]
    baseline: set[str]
    baseline_on_arch: set[str]  # baseline plus the rules for this architecture alone

    @property
    def beyond_baseline(self) -> set[str]:
        return self.allowed - self.baseline_on_arch

    @property
    def reduction(self) -> float:
        """Fraction of the baseline's unconditional syscalls the profile refuses."""
        return 1 - len(self.allowed & self.baseline) / len(self.baseline)

    def to_json(self) -> dict:
        return {"allowed": len(self.allowed), "baseline": len(self.baseline), "reduction": round(self.reduction, 3),
                "beyond_baseline": sorted(self.beyond_baseline)}


def compare_with_docker(allowed: set[str], oci_arch: str, docker_profile: dict | None = None) -> SurfaceComparison:
    docker = docker_profile or load_docker_default()
    baseline = unconditional_allows(docker)
    return SurfaceComparison(set(allowed), baseline, baseline | arch_allows(docker, oci_arch))
