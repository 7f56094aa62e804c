"""Every Pod Security check in one registry, as upstream's policy/registry.go composes them.

Each check has its id, its level, and its revisions: the policy version (v1.N) from which a
revision applies and its function (tracer.kube.pss.baseline, tracer.kube.pss.restricted); a
restricted revision may name the baseline checks it overrides. `checks_for` picks, for each
check, the newest revision not newer than the requested version:
- `privileged` allows everything;
- `baseline` runs the baseline checks;
- `restricted` runs the restricted checks plus every baseline check that no restricted
  check *overrides* at that version (e.g. `capabilities_restricted` replaces
  `capabilities_baseline` from v1.22 on);
- checks run in a fixed order: baseline ids sorted, then restricted ids sorted;
- a version newer than the newest revision of any check (and `latest`) evaluates as the
  newest one.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracer.kube.pss import baseline, restricted
from tracer.kube.pss.gocompat import CheckFn
from tracer.kube.pss.versions import BASELINE, PRIVILEGED, RESTRICTED, Version, parse_level, parse_version


@dataclass(frozen=True)
class Revision:
    since: int  # first policy minor version (v1.N) this revision applies to
    check: CheckFn
    overrides: tuple[str, ...] = ()  # baseline check ids this restricted revision replaces


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    revisions: tuple[Revision, ...]  # oldest first

    def at(self, minor: int) -> Revision | None:
        """The revision in force at policy version v1.minor, None before the check existed."""
        applicable = [r for r in self.revisions if r.since <= minor]
        return applicable[-1] if applicable else None


def _check(id_: str, level: str, *revisions: Revision) -> Check:
    return Check(id_, level, revisions)


R = Revision
REGISTRY: tuple[Check, ...] = (
    # baseline
    _check("appArmorProfile", BASELINE, R(0, baseline.app_armor_profile_1_0)),
    _check("capabilities_baseline", BASELINE, R(0, baseline.capabilities_baseline_1_0)),
    _check("hostNamespaces", BASELINE, R(0, baseline.host_namespaces_1_0)),
    _check("hostPathVolumes", BASELINE, R(0, baseline.host_path_volumes_1_0)),
    _check("hostPorts", BASELINE, R(0, baseline.host_ports_1_0)),
    _check("hostProbesAndHostLifecycle", BASELINE, R(34, baseline.host_probes_and_host_lifecycle_1_34)),
    _check("privileged", BASELINE, R(0, baseline.privileged_1_0)),
    _check("procMount", BASELINE, R(0, baseline.proc_mount_1_0), R(35, baseline.proc_mount_1_35)),
    _check("seLinuxOptions", BASELINE, R(0, baseline.se_linux_options_1_0), R(31, baseline.se_linux_options_1_31)),
    _check(
        "seccompProfile_baseline",
        BASELINE,
        R(0, baseline.seccomp_profile_baseline_1_0),
        R(19, baseline.seccomp_profile_baseline_1_19),
    ),
    _check(
        "sysctls",
        BASELINE,
        R(0, baseline.sysctls_1_0),
        R(27, baseline.sysctls_1_27),
        R(29, baseline.sysctls_1_29),
        R(32, baseline.sysctls_1_32),
        R(37, baseline.sysctls_1_37),
    ),
    _check("windowsHostProcess", BASELINE, R(0, baseline.windows_host_process_1_0)),
    # restricted
    _check(
        "allowPrivilegeEscalation",
        RESTRICTED,
        R(8, restricted.allow_privilege_escalation_1_8),
        R(25, restricted.allow_privilege_escalation_1_25),
    ),
    _check(
        "capabilities_restricted",
        RESTRICTED,
        R(22, restricted.capabilities_restricted_1_22, ("capabilities_baseline",)),
        R(25, restricted.capabilities_restricted_1_25, ("capabilities_baseline",)),
    ),
    _check("procMount_restricted", RESTRICTED, R(35, restricted.proc_mount_restricted_1_35, ("procMount",))),
    _check("restrictedVolumes", RESTRICTED, R(0, restricted.restricted_volumes_1_0, ("hostPathVolumes",))),
    _check("runAsNonRoot", RESTRICTED, R(0, restricted.run_as_non_root_1_0), R(35, restricted.run_as_non_root_1_35)),
    _check("runAsUser", RESTRICTED, R(23, restricted.run_as_user_1_23), R(35, restricted.run_as_user_1_35)),
    _check(
        "seccompProfile_restricted",
        RESTRICTED,
        R(19, restricted.seccomp_profile_restricted_1_19, ("seccompProfile_baseline",)),
        R(25, restricted.seccomp_profile_restricted_1_25, ("seccompProfile_baseline",)),
    ),
)
del R

NEWEST_MINOR = max(r.since for c in REGISTRY for r in c.revisions)  # what `latest` means


def checks_for(level: str, version: str | Version) -> list[tuple[str, Revision]]:
    """(check id, revision) pairs run for a level and version, in upstream's order."""
    level = parse_level(level)
    if level == PRIVILEGED:
        return []
    parsed = parse_version(version)
    minor = NEWEST_MINOR if parsed.latest else min(parsed.minor, NEWEST_MINOR)
    in_force = {c.id: (c.level, rev) for c in REGISTRY if (rev := c.at(minor)) is not None}
    if level == BASELINE:
        return sorted((id_, rev) for id_, (lvl, rev) in in_force.items() if lvl == BASELINE)
    overridden = {o for lvl, rev in in_force.values() if lvl == RESTRICTED for o in rev.overrides}
    baseline = sorted((id_, rev) for id_, (lvl, rev) in in_force.items() if lvl == BASELINE and id_ not in overridden)
    restricted = sorted((id_, rev) for id_, (lvl, rev) in in_force.items() if lvl == RESTRICTED)
    return baseline + restricted
