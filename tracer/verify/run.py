"""Enforce and verify: put a profile into an OCI bundle, run the workload under it, and count
what the kernel refused.

A refusal is seen where it happens: a syscall the filter refuses still passes the
raw_syscalls:sys_exit tracepoint with its number and the filter's errno, and a denied
capability check passes capability:cap_capable. The same recorder that made the trace
watches the verification run, so the report uses the trace format too.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tracer import cgroups, runc
from tracer.arch import native_oci_arch
from tracer.argnames import ADDRESS_FAMILIES, NAMESPACE_FLAGS, NETLINK_PROTOCOLS, PERSONALITY_FLAGS, SOCKET_TYPES
from tracer.capabilities import capability_name
from tracer.oci import (
    check_bundle,
    enforce,
    named_netns,
    read_config,
    stop_signal,
    write_config,
)
from tracer.owned import CGROUP, DIRECTORY, OWNED, RUNC, Owned
from tracer.profile.against import deciding_rule, describe_row, kernel_values
from tracer.profile.directory import load_profile_dir
from tracer.profile.filter import Filter, filter_from_oci
from tracer.syscalls import syscall_name
from tracer.targets import process_alive, recording_config
from tracer.targets.runc import unique_container_id
from tracer.trace.arguments import Arguments
from tracer.trace.format import (
    CAP_OUTCOMES,
    PHASES,
    PROFILE_PHASES,
    Snapshot,
    Trace,
    write_trace,
)


def apply_profile(profile_dir: Path, bundle: Path) -> dict:
    """Write the profile into BUNDLE/config.json, keeping everything else; return the config."""
    profile = load_profile_dir(profile_dir)
    config = enforce(read_config(check_bundle(bundle)), profile.seccomp, profile.capabilities["add"])
    write_config(bundle, config)
    return config


# ---------------------------------------------------------------- verify

PROBE_SOURCE = Path(__file__).with_name("probe.c")
PROBE_DIR_IN_CONTAINER = ".seccomp-tracer-probe"
DANGEROUS_SYSCALLS = (
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "ptrace",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "sethostname",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "open_by_handle_at",
    "userfaultfd",
    "reboot",
    "swapon",
    "process_vm_readv",
    "io_uring_setup",
    "syslog",
    "fsopen",
    "move_mount",
)


def _values(table: dict[int, str]) -> dict[str, int]:
    return {name: value for value, name in table.items()}


FAMILY, TYPE, NETLINK, NAMESPACE = (
    _values(table) for table in (ADDRESS_FAMILIES, SOCKET_TYPES, NETLINK_PROTOCOLS, NAMESPACE_FLAGS)
)
# Calls a profile must refuse by their arguments (probe.c makes them): the syscall and its
# argument registers, to ask the profile whether the workload's own values include them.
ARGUMENT_PROBES = {
    "clone:CLONE_NEWUSER|CLONE_NEWNET": (
        "clone",
        {0: NAMESPACE["CLONE_NEWUSER"] | NAMESPACE["CLONE_NEWNET"] | signal.SIGCHLD},
    ),
    "clone3:CLONE_NEWUSER|CLONE_NEWNET": ("clone3", {}),  # seccomp cannot see clone3's flags
    "socket:AF_VSOCK": ("socket", {0: FAMILY["AF_VSOCK"], 1: TYPE["SOCK_STREAM"], 2: 0}),
    "socket:AF_ALG": ("socket", {0: FAMILY["AF_ALG"], 1: TYPE["SOCK_SEQPACKET"], 2: 0}),
    "socket:AF_PACKET": ("socket", {0: FAMILY["AF_PACKET"], 1: TYPE["SOCK_RAW"], 2: 0}),
    **{
        f"socket:AF_NETLINK/{protocol}": (
            "socket",
            {0: FAMILY["AF_NETLINK"], 1: TYPE["SOCK_RAW"], 2: NETLINK[protocol]},
        )
        for protocol in ("NETLINK_ROUTE", "NETLINK_AUDIT", "NETLINK_NETFILTER")
    },
    "personality:ADDR_NO_RANDOMIZE": ("personality", {0: _values(PERSONALITY_FLAGS)["ADDR_NO_RANDOMIZE"]}),
}


@dataclass
class Refusal:
    kind: str  # "syscall" refused by the filter, "arguments" refused by its conditions, or "capability"
    name: str
    syscall: str
    phase: str
    count: int

    def describe(self) -> str:
        if self.kind == "syscall":
            return f"syscall {self.name} refused {self.count}x in phase {self.phase}"
        if self.kind == "arguments":
            return f"{self.name}: refused by the profile's argument conditions"
        return f"{self.name} denied in {self.syscall}, which then failed, {self.count}x in phase {self.phase}"


@dataclass
class VerifyReport:
    profile: str
    bundle: str
    ready: bool | None = None
    ready_after_s: float | None = None
    load_command: str | None = None
    load_status: int | None = None
    load_output: str = ""
    stop_signal: str = "SIGTERM"
    stop_status: int | None = None
    calls: int = 0
    refused: list[Refusal] = field(default_factory=list)
    fallbacks: dict[str, int] = field(default_factory=dict)
    dangerous: list[dict] = field(default_factory=list)
    argument_probes: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    container_output: str = ""

    @property
    def stopped_cleanly(self) -> bool:
        return self.stop_status == 0

    @property
    def passed(self) -> bool:
        return not self.failures()

    def failures(self) -> list[str]:
        failures = list(self.problems)
        if self.ready is False:
            failures.append("the container never became ready")
        if self.load_command is not None and self.load_status != 0:
            failures.append(f"the load command exited {self.load_status}")
        if not self.stopped_cleanly:
            failures.append(f"the container did not stop cleanly on {self.stop_signal} (exit {self.stop_status})")
        failures.extend(r.describe() for r in self.refused)
        failures.extend(
            f"dangerous syscall {d['syscall']} was not refused (errno {d['errno']})"
            for d in self.dangerous
            if not d["allowed_by_profile"] and not d["refused"]
        )
        failures.extend(
            f"{d['probe']} succeeds unconfined and was not refused inside the container (errno {d['errno']})"
            for d in self.argument_probes
            if d["applicable"] and not d["refused"] and not d["allowed_by_profile"]
        )
        return failures

    def to_text(self) -> str:
        lines = [f"verify {self.profile} on {self.bundle}: {self.calls:,} calls"]
        if self.ready is not None:
            lines.append(
                f"  ready       {'yes' if self.ready else 'NO'}"
                + (f" after {self.ready_after_s}s" if self.ready else "")
            )
        if self.load_command:
            lines.append(f"  load        exit {self.load_status}: {self.load_command}")
            lines.extend(f"              {line}" for line in self.load_output.strip().splitlines()[-6:])
        lines.append(f"  stop        {self.stop_signal} -> exit {self.stop_status}")
        lines.append(f"  refused     {len(self.refused) or 'nothing'}")
        lines.extend(f"    {r.describe()}" for r in self.refused)
        for name, count in self.fallbacks.items():
            lines.append(f"  fallback    {name} answered ENOSYS {count}x (expected: the library falls back)")
        if self.dangerous:
            refused = [d["syscall"] for d in self.dangerous if d["refused"]]
            lines.append(
                f"  dangerous   {len(refused)} of {len(self.dangerous)} refused inside the container: {' '.join(refused)}"
            )
            lines.extend(
                f"    {d['syscall']}: allowed by the profile (the workload made it)"
                for d in self.dangerous
                if d["allowed_by_profile"]
            )
        if self.argument_probes:
            lines.append("  arguments   " + argument_probe_summary(self.argument_probes))
            lines.extend(f"    {d['probe']}: {argument_probe_outcome(d)}" for d in self.argument_probes)
        failures = self.failures()
        if failures and self.container_output.strip():
            lines.append("  container output (last lines):")
            lines.extend(f"    {line}" for line in self.container_output.strip().splitlines()[-10:])
        lines.append("PASS" if not failures else "FAIL\n" + "\n".join(f"  - {f}" for f in failures))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "profile": self.profile,
            "bundle": self.bundle,
            "ready": self.ready,
            "ready_after_s": self.ready_after_s,
            "load": {
                "command": self.load_command,
                "exit_status": self.load_status,
                "output_tail": self.load_output[-2000:],
            },
            "stop": {"signal": self.stop_signal, "exit_status": self.stop_status, "clean": self.stopped_cleanly},
            "calls": self.calls,
            "refused": [vars(r) for r in self.refused],
            "fallbacks": self.fallbacks,
            "dangerous": self.dangerous,
            "argument_probes": self.argument_probes,
            "failures": self.failures(),
            "container_output_tail": self.container_output[-4000:],
        }


def argument_probe_summary(probes: list[dict]) -> str:
    applicable = [d for d in probes if d["applicable"] and not d["allowed_by_profile"]]
    refused = [d for d in applicable if d["refused"]]
    return (
        f"{len(refused)} of {len(applicable)} calls that succeed in an unconfined twin were refused inside the "
        "container"
    )


def argument_probe_outcome(probe: dict) -> str:
    if probe["allowed_by_profile"]:
        return "allowed by the profile (the workload made it)"
    if not probe["applicable"]:
        return f"fails unconfined too (errno {probe['unconfined_errno']}); errno {probe['errno']} inside"
    return f"succeeds unconfined, {'refused' if probe['refused'] else 'NOT refused'} inside (errno {probe['errno']})"


def probe_binary() -> Path:
    """The dangerous-syscall probe, compiled statically once per source version."""
    source = PROBE_SOURCE.read_bytes()
    target = Path(tempfile.gettempdir()) / f"seccomp-tracer-probe-{hashlib.sha256(source).hexdigest()[:12]}" / "probe"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".tmp")
        subprocess.run(
            ["gcc", "-static", "-O2", "-o", str(partial), str(PROBE_SOURCE)], check=True, capture_output=True
        )
        os.replace(partial, target)
    return target


def verification_config(bundle: Path, profile_dir: Path, cgroup: Path, probe: Path | None) -> dict:
    """The bundle's config with the profile applied, in our cgroup, with the probe mounted."""

    profile = load_profile_dir(profile_dir)
    config = enforce(recording_config(bundle, cgroup), profile.seccomp, profile.capabilities["add"])
    if probe is not None:
        config["mounts"].append(
            {
                "destination": probe_mountpoint(config),
                "type": "bind",
                "source": str(probe.parent),
                "options": ["rbind", "ro", "nosuid", "nodev"],
            }
        )
    return config


def probe_mountpoint(config: dict) -> str:
    # Inside a tmpfs the mountpoint is made in the container's scratch, not in its rootfs.
    tmpfs = [
        m["destination"] for m in config.get("mounts", []) if m.get("type") == "tmpfs" and m["destination"] == "/tmp"
    ]
    return f"{tmpfs[0]}/{PROBE_DIR_IN_CONTAINER}" if tmpfs else f"/{PROBE_DIR_IN_CONTAINER}"


def argument_refusals(arguments: Arguments, seccomp: dict) -> list[Refusal]:
    """Recorded calls of names the profile allows whose arguments its conditions refuse."""
    profile = filter_from_oci(seccomp)
    refused = []
    for row in arguments.in_phases(PROFILE_PHASES).rows:
        if not profile.indices(row.syscall) or not profile.allows_anything(row.syscall) or not row.arguments():
            continue  # unconditioned, or refused by name (counted as a syscall refusal)
        if deciding_rule(profile, row.syscall, kernel_values(row.syscall, row)) is None:
            refused.append(Refusal("arguments", describe_row(row), row.syscall, row.phase, row.count))
    return refused


def find_refusals(
    before: Snapshot, after: Snapshot, arch: str, seccomp: dict, capabilities: dict
) -> tuple[list[Refusal], dict]:
    """Refusals in the workload's phases between two snapshots, and ENOSYS fallbacks."""
    profile = filter_from_oci(seccomp)
    allowed, enosys_rules = profile.names_allowed(), profile.names_enosys()
    expected_cap_failures = {
        (cap, row["syscall"]) for cap, rows in capabilities.get("failed_without", {}).items() for row in rows
    }
    calls = after.syscalls.astype(np.int64) - before.syscalls.astype(np.int64)
    refused, fallbacks = [], {}
    for phase in PROFILE_PHASES:
        p = PHASES.index(phase)
        for nr in np.flatnonzero(calls[p, :, 0] > 0):
            name = syscall_name(arch, int(nr)) or f"syscall_{nr}"
            if name in allowed:
                continue
            if name in enosys_rules:
                fallbacks[name] = fallbacks.get(name, 0) + int(calls[p, nr, 0])
            else:
                refused.append(Refusal("syscall", name, name, phase, int(calls[p, nr, 0])))
    denied_failed = CAP_OUTCOMES.index("denied_failed")
    for (p, cap, nr, outcome), count in sorted(after.capabilities.items()):
        new = count - before.capabilities.get((p, cap, nr, outcome), 0)
        if outcome != denied_failed or new <= 0 or PHASES[p] not in PROFILE_PHASES:
            continue
        syscall = syscall_name(arch, nr) or f"syscall_{nr}"
        if (capability_name(cap), syscall) not in expected_cap_failures:
            refused.append(Refusal("capability", capability_name(cap), syscall, PHASES[p], new))
    return refused, fallbacks


PROBE_CGROUP = "seccomp-tracer-probe"


def run_probe(
    container_id: str, pid: int, mountpoint: str, names: list[str], runc_root: str | None = None
) -> dict[str, int]:
    """Run the probe inside the container (same filter and capabilities); {syscall: errno}.

    It runs in a child cgroup of the container's, so the recorder, which counts the
    container's own cgroup, never mistakes the probe's calls for the workload's."""
    if not names:
        return {}
    sub_cgroups = cgroups.make_sub_cgroups(pid, PROBE_CGROUP)
    try:
        done = subprocess.run(
            runc.global_args(runc_root)
            + ["exec", "--cgroup", PROBE_CGROUP, container_id, f"{mountpoint}/probe", *names],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        for path in sub_cgroups:
            cgroups.remove_cgroup(path)
    if done.returncode != 0:
        raise runc.RuncError(
            ["runc", "exec", container_id], done.stderr or f"probe exited {done.returncode}", done.returncode
        )
    return {name: int(errno) for name, errno in (line.split() for line in done.stdout.splitlines())}


def refusal_errnos(profile: Filter) -> set[int]:
    # runc answers syscalls newer than the newest one a profile names with ENOSYS rather than
    # the default errno, so that libraries fall back (runc's patchbpf); both never ran.
    default = profile.default.returned_errno
    return {errno.EPERM if default is None else default, errno.ENOSYS}


def probe_container(container_id: str, pid: int, workdir: Path, config: dict, names: list[str]) -> dict[str, int]:
    """Probe inside the running container; a batch workload that has already exited (or
    exits meanwhile) is probed through a twin container under the same profile."""
    if process_alive(pid):
        try:
            return run_probe(container_id, pid, probe_mountpoint(config), names)
        except runc.RuncError:
            if not exits_soon(pid):  # an exec into a container that is exiting fails too
                raise
    return run_probe_in_twin(workdir, config, names)


def exits_soon(pid: int, grace: float = 3.0) -> bool:
    deadline = time.monotonic() + grace
    while process_alive(pid):
        runc.reap_runc_orphans(keep=pid)  # an exiting init waits for the failed exec's helpers
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_probe_in_twin(
    workdir: Path, config: dict, names: list[str], label: str = "twin", unconfined: bool = False
) -> dict[str, int]:
    """Run the probe as the process of a new container with the same filter and capabilities
    (or, unconfined, the same capabilities and no filter)."""
    twin_dir = workdir / label
    twin_dir.mkdir()
    twin = copy.deepcopy(config)
    twin["process"]["args"] = [f"{probe_mountpoint(config)}/probe", *names]
    twin["linux"].pop("cgroupsPath", None)
    if unconfined:
        twin["linux"].pop("seccomp", None)
    write_config(twin_dir, twin)
    output = twin_dir / "probe.out"
    twin_id = f"{workdir.name}-{label}"
    owned = OWNED.own(Owned(RUNC, str(twin_dir), twin_id))
    try:
        with open(output, "w") as stdout:
            status = runc.run_to_completion(twin_dir, twin_id, stdout=stdout, timeout=30)
    finally:
        OWNED.release(owned)
    if status != 0:
        raise runc.RuncError(["runc", "run", "probe"], f"probe exited {status}", status)
    return {name: int(errno) for name, errno in (line.split() for line in output.read_text().splitlines())}


def verify(
    profile_dir: Path,
    bundle: Path,
    load_command: str | None,
    *,
    ready_url: str | None = None,
    ready_timeout: float = 120,
    load_timeout: float = 600,
    stop_timeout: float = 30,
    probe: bool = True,
    out: Path | None = None,
    log=lambda message: None,
) -> VerifyReport:
    """Run BUNDLE's container under the profile through readiness, load and stop; report refusals."""
    from tracer.recorder.kernel import load_kernel_recorder  # noqa: PLC0415 (bcc only when verifying)

    profile = load_profile_dir(profile_dir)
    seccomp, capabilities = profile.seccomp, profile.capabilities
    bundle = check_bundle(bundle)
    report = VerifyReport(
        str(profile_dir), str(bundle), load_command=load_command, stop_signal=stop_signal(bundle).name
    )
    container_id = unique_container_id("verify")
    cgroup = cgroups.new_cgroup_path(container_id)
    workdir = Path(tempfile.gettempdir()) / f"tracer-{container_id}"
    owned = [
        OWNED.own(Owned(CGROUP, str(cgroup))),
        OWNED.own(Owned(DIRECTORY, str(workdir))),
        OWNED.own(Owned(RUNC, str(workdir), container_id)),
    ]
    try:
        workdir.mkdir(mode=0o700)
        cgroups.make_cgroup(path=cgroup)
        probe_path = probe_binary() if probe else None
        config = verification_config(bundle, profile_dir, cgroup, probe_path)
        write_config(workdir, config)
        recorder = load_kernel_recorder(cgroups.cgroup_id(cgroup), gated=True)
        try:
            final, lost, arguments = _run_verification(
                report,
                container_id,
                workdir,
                config,
                recorder,
                probe_path,
                seccomp,
                load_command,
                ready_url,
                ready_timeout,
                load_timeout,
                stop_timeout,
                log,
            )
        finally:
            recorder.close()
    finally:
        OWNED.release(*owned)
    report.refused, report.fallbacks = find_refusals(Snapshot.empty(), final, native_oci_arch(), seccomp, capabilities)
    report.refused += argument_refusals(arguments, seccomp)
    report.calls = int(final.calls_in(PROFILE_PHASES).sum())
    if any(lost.values()):
        report.problems.append(
            "counters lost during verification: " + ", ".join(f"{k} {v}" for k, v in lost.items() if v)
        )
    if out is not None:
        write_trace(
            Trace(
                {
                    "arch": native_oci_arch(),
                    "verification_of": str(profile_dir),
                    "bundle": str(bundle),
                    "complete": True,
                },
                [final],
                lost,
                source=str(out),
                arguments=arguments,
            ),
            out,
        )
    return report


def _run_verification(
    report: VerifyReport,
    container_id: str,
    workdir: Path,
    config: dict,
    recorder,
    probe_path,
    seccomp: dict,
    load_command,
    ready_url,
    ready_timeout,
    load_timeout,
    stop_timeout,
    log,
):
    """Start the container, wait for readiness, load, probe and stop it; the final counters
    and the recorded arguments."""
    from tracer.recorder.load import run_load_command  # noqa: PLC0415

    netns = named_netns(config)
    started = time.monotonic()
    with open(workdir / "container.log", "w+") as container_log:
        try:
            runc.become_subreaper()
            pid = runc.create(workdir, container_id, stdout=container_log, stderr=container_log)
            runc.start(container_id)
            log(f"container {container_id} started under {report.profile}")
            if ready_url:
                report.ready = wait_ready(ready_url, netns, pid, ready_timeout)
                report.ready_after_s = round(time.monotonic() - started, 2)
                log(f"ready: {report.ready} after {report.ready_after_s}s")
            if report.ready or load_command:  # without either, a batch workload stays in startup
                recorder.set_phase("load")
            if load_command and report.ready is not False:
                report.load_status, report.load_output = run_load_command(load_command, netns, load_timeout)
                log(f"load command exited {report.load_status}")
            if probe_path is not None:
                probe_dangerous_calls(report, container_id, pid, workdir, config, seccomp)
            report.stop_status = stop_container(container_id, pid, report.stop_signal, stop_timeout)
            log(f"container stopped: exit {report.stop_status}")
            final, lost = recorder.read(time.monotonic() - started)
            return final, lost, recorder.arguments()
        finally:
            container_log.seek(0)
            report.container_output = container_log.read()


def probe_dangerous_calls(
    report: VerifyReport, container_id: str, pid: int, workdir: Path, config: dict, seccomp: dict
) -> None:
    """Inside the container: each dangerous syscall the profile does not allow, and each call
    it must refuse by its arguments; the latter also in an unconfined twin with the same
    capabilities, since only what succeeds there shows the filter at work."""
    profile = filter_from_oci(seccomp)
    allowed = profile.names_allowed()
    names = [name for name in DANGEROUS_SYSCALLS if name not in allowed]
    argument_probes = [probe for probe in ARGUMENT_PROBES if not profile_allows_probe(profile, probe)]
    try:
        results = probe_container(container_id, pid, workdir, config, names + argument_probes)
        unconfined = (
            run_probe_in_twin(workdir, config, argument_probes, "unconfined", unconfined=True)
            if argument_probes
            else {}
        )
    except (runc.RuncError, subprocess.TimeoutExpired) as err:
        report.problems.append(f"the dangerous-syscall probe could not run in the container: {err}")
        return
    refusals = refusal_errnos(profile)
    report.dangerous = [
        {"syscall": name, "errno": results[name], "refused": results[name] in refusals, "allowed_by_profile": False}
        for name in names
        if name in results
    ]
    report.dangerous += [
        {"syscall": name, "errno": None, "refused": False, "allowed_by_profile": True}
        for name in DANGEROUS_SYSCALLS
        if name in allowed
    ]
    report.argument_probes = [
        {
            "probe": probe,
            "syscall": ARGUMENT_PROBES[probe][0],
            "errno": results.get(probe),
            "unconfined_errno": unconfined.get(probe),
            "applicable": unconfined.get(probe) == 0,
            "refused": results.get(probe) in refusals,
            "allowed_by_profile": False,
        }
        for probe in argument_probes
    ]
    report.argument_probes += [
        {
            "probe": probe,
            "syscall": ARGUMENT_PROBES[probe][0],
            "errno": None,
            "unconfined_errno": None,
            "applicable": False,
            "refused": False,
            "allowed_by_profile": True,
        }
        for probe in ARGUMENT_PROBES
        if probe not in argument_probes
    ]


def profile_allows_probe(profile: Filter, probe: str) -> bool:
    syscall, registers = ARGUMENT_PROBES[probe]
    return profile.allows(syscall, registers)


def wait_ready(url: str, netns: str | None, pid: int, timeout: float) -> bool:
    from tracer.recorder.load import url_ready  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process_alive(pid):
        if url_ready(url, netns):
            return True
        time.sleep(0.1)
    return False


def stop_container(container_id: str, pid: int, signal_name: str, timeout: float) -> int | None:
    try:
        return runc.wait_exit(pid, timeout=0)
    except TimeoutError:
        pass
    try:
        runc.kill(container_id, signal_name)
        return runc.wait_exit(pid, timeout=timeout)
    except TimeoutError:
        runc.kill(container_id, "SIGKILL")
        runc.wait_exit(pid, timeout=10)
        return None
    except runc.RuncError:
        return runc.wait_exit(pid, timeout=timeout)
