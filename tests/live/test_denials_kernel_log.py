"""`tracer denials` on a real runc container under a complain-mode (SCMP_ACT_LOG) profile: its
records are read back from the kernel log, per container while it runs and after it exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from support.cli import tracer_cli
from support.live import require_live
from support.waiting import wait_for
from tracer import runc
from tracer.embedded.bundle import make_bundle
from tracer.syscalls import syscall_table
from tracer.verify import complain as denials
from tracer.verify.complain import syscalls_from_log

WORKLOAD = """
import os, time
for _ in range(60):
    os.getpriority(os.PRIO_PROCESS, 0)  # outside the profile: logged, allowed
    time.sleep(1)  # one record a second: a rate-limited one is followed by another
"""
REFUSED = "getpriority"


def require_seccomp_records_in_the_kernel_log() -> None:
    if os.uname().machine != "x86_64":
        require_live(f"the profile is written for x86_64, this machine is {os.uname().machine}")
    if not os.access(denials.KMSG, os.R_OK):
        require_live("cannot read /dev/kmsg")
    if denials.AUDIT_LOG.exists():
        require_live("auditd keeps the records in audit.log, not the kernel log")
    if "log" not in Path("/proc/sys/kernel/seccomp/actions_logged").read_text().split():
        require_live("kernel.seccomp.actions_logged leaves out log")


def log_profile_without(syscall: str) -> dict:
    allowed = sorted(set(syscall_table("SCMP_ARCH_X86_64").values()) - {syscall})
    return {
        "defaultAction": "SCMP_ACT_LOG",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}],
    }


def denials_of(pid: int, *args: str) -> list[dict]:
    done = tracer_cli("denials", "--since", "1m", "--format", "json", *args)
    return [d for d in json.loads(done.stdout)["denials"] if d["pid"] == pid]


def test_complain_mode_record_is_read_back_per_container(live, tmp_path):
    require_seccomp_records_in_the_kernel_log()
    bundle = make_bundle(
        tmp_path / "bundle", ["/usr/bin/python3", "-c", WORKLOAD], seccomp=log_profile_without(REFUSED)
    )
    container_id = f"denials-{uuid.uuid4().hex[:8]}"
    pid = runc.create(bundle, container_id)
    try:
        runc.start(container_id)
        cgroup = next(
            line[3:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if line.startswith("0::")
        )
        running = wait_for(
            lambda: denials_of(pid), 15, "a seccomp record of the container in the kernel log", interval=0.5
        )
        assert {(d["syscall"], d["action"], d["cgroup"]) for d in running} == {(REFUSED, "log", cgroup)}
        in_cgroup = denials_of(pid, "--cgroup", cgroup)
        assert in_cgroup and all(d["cgroup"] == cgroup for d in in_cgroup)
        assert denials_of(pid, "--cgroup", "/elsewhere") == []
    finally:
        runc.delete(container_id, force=True)

    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the container process to be reaped", interval=0.5)
    exited = denials_of(pid)
    assert exited and all(d["cgroup"] is None for d in exited)
    assert {(d["syscall"], d["action"], d["comm"]) for d in exited} == {(REFUSED, "log", "python3")}

    saved = tmp_path / "dmesg.txt"
    saved.write_text(subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout)
    assert REFUSED in syscalls_from_log(saved)
    assert tracer_cli("denials", "--source", str(saved), "--cgroup", "/none").returncode == 0
