"""`tracer denials`: seccomp records from captured log lines (read back from a real container's
kernel log: tests/live/test_denials_kernel_log.py)."""

from __future__ import annotations

import gzip
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from support.cli import tracer_cli
from tracer.cgroups import cgroup_v2_root
from tracer.verify.complain import MalformedRecord, decode_action, parse_record, read_log, syscalls_from_log

# Captured on this project's test VM (kernel 6.18, no auditd): /dev/kmsg as dmesg prints it.
FIELDS = (
    'auid=4294967295 uid=1000 gid=1000 ses=4294967295 pid=16886 comm="python3" '
    'exe="/usr/bin/python3.11" sig=0 arch=c000003e syscall=140 compat=0 ip=0x7f6d7f163b67 code=0x7ffc0000'
)
DMESG_LINE = f"[ 1503.646123] audit: type=1326 audit(1795903130.883:2): {FIELDS}"
KMSG_MESSAGE = f"audit: type=1326 audit(1795903130.883:2): {FIELDS}"
# auditd's audit.log, where an LSM adds subj=
AUDIT_LOG_FIELDS = FIELDS.replace("ses=4294967295 ", "ses=4294967295 subj=unconfined ")
AUDIT_LOG_LINE = f"type=SECCOMP msg=audit(1795903130.883:2): {AUDIT_LOG_FIELDS}"
JOURNAL_LINE = f"2026-11-28T21:58:50+0000 vm kernel: audit: type=1326 audit(1795903130.883:2): {FIELDS}"
SUPPRESSED_LINE = "[ 1566.348053] kauditd_printk_skb: 20 callbacks suppressed"
RECORD_TIME = datetime.fromtimestamp(1795903130.883, timezone.utc)


def record_line(
    stamp: float, serial: int, syscall: int = 140, code: str = "0x7ffc0000", arch: str = "c000003e", pid: int = 16886
) -> str:
    return (
        f"type=SECCOMP msg=audit({stamp:.3f}:{serial}): auid=4294967295 uid=0 gid=0 ses=4294967295 "
        f'pid={pid} comm="python3" exe="/usr/bin/python3.11" sig=0 arch={arch} syscall={syscall} '
        f"compat=0 ip=0x7f00 code={code}"
    )


def write_log(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# --- record formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line", [DMESG_LINE, KMSG_MESSAGE, AUDIT_LOG_LINE, JOURNAL_LINE], ids=["dmesg", "kmsg", "audit.log", "journalctl"]
)
def test_each_log_format_gives_the_same_record(line):
    denial = parse_record(line)
    assert (denial.pid, denial.comm, denial.exe) == (16886, "python3", "/usr/bin/python3.11")
    assert (denial.arch, denial.syscall_nr, denial.syscall, denial.action) == (
        "SCMP_ARCH_X86_64",
        140,
        "getpriority",
        "log",
    )
    assert denial.time == RECORD_TIME
    assert denial.record_id == "1795903130.883:2"
    assert denial.cgroup is None


def test_lines_that_are_no_seccomp_record_are_not_records():
    assert parse_record(SUPPRESSED_LINE) is None
    assert parse_record("[    1.2] EXT4-fs (vda): mounted filesystem") is None
    assert parse_record("type=SYSCALL msg=audit(1795903130.883:3): arch=c000003e syscall=59") is None


def test_hex_encoded_comm_and_exe_are_decoded():
    # audit writes a string holding a space or quote as hex
    line = DMESG_LINE.replace('comm="python3"', "comm=6D7920617070").replace('exe="/usr/bin/python3.11"', "exe=(null)")
    denial = parse_record(line)
    assert (denial.comm, denial.exe) == ("my app", "(null)")


@pytest.mark.parametrize(
    ("audit_arch", "nr", "oci_arch", "name"),
    [
        ("c000003e", 140, "SCMP_ARCH_X86_64", "getpriority"),
        ("c00000b7", 141, "SCMP_ARCH_AARCH64", "getpriority"),
    ],
)
def test_syscall_numbers_are_named_by_the_record_arch(audit_arch, nr, oci_arch, name):
    denial = parse_record(record_line(1.0, 1, syscall=nr, arch=audit_arch))
    assert (denial.arch, denial.syscall) == (oci_arch, name)


def test_i386_records_decode_their_arch():
    denial = parse_record(record_line(1.0, 1, syscall=96, arch="40000003"))
    assert denial.arch == "SCMP_ARCH_X86"
    # tracer.syscalls has no i386 table yet; the number is then kept without a name
    assert denial.syscall in (None, "getpriority")


def test_unknown_arch_keeps_the_number():
    denial = parse_record(record_line(1.0, 1, syscall=7, arch="deadbeef"))
    assert (denial.arch, denial.syscall, denial.syscall_nr) == ("audit arch 0xdeadbeef", None, 7)


@pytest.mark.parametrize(
    ("code", "action", "errno"),
    [
        (0x7FFC0000, "log", None),
        (0x00050001, "errno", "EPERM"),
        (0x00050026, "errno", "ENOSYS"),
        (0x80000000, "kill_process", None),
        (0x00000000, "kill_thread", None),
        (0x00030000, "trap", None),
        (0x7FF00000, "trace", None),
        (0x7FF00005, "trace", None),
        (0x7FC00000, "user_notif", None),
        (0x12340000, "unknown 0x12340000", None),
    ],
)
def test_actions_are_decoded(code, action, errno):
    assert decode_action(code) == (action, errno)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("type=1326 audit(17959031.883:2): pid=1 arch=c000003e code=0x7ffc0000", "no syscall"),
        ("type=1326 audit(17959031.883:2): pid=1 arch=zz syscall=1 code=0x7ffc0000", "bad number"),
        ("type=SECCOMP msg=audit(11/28/2026 21:58:50.883:2) : pid=1 arch=x86_64 syscall=getpriority", "no audit("),
    ],
)
def test_malformed_records_say_what_is_wrong(line, problem):
    with pytest.raises(MalformedRecord, match=problem.replace("(", r"\(")):
        parse_record(line)


# --- reading logs ---------------------------------------------------------------------------


def test_malformed_lines_are_counted_and_skipped(tmp_path):
    log = read_log(
        str(
            write_log(
                tmp_path / "kern.log",
                "noise",
                DMESG_LINE,
                "[ 9.1] audit: type=1326 audit(1795903131.000:3): pid=12 arch=c000003e",
                "type=SECCOMP msg=audit(1795903131.000:4): pid=x arch=c000003e syscall=1 code=0",
            )
        )
    )
    assert [d.syscall for d in log.denials] == ["getpriority"]
    assert len(log.malformed) == 2
    assert log.malformed[0].startswith(f"{tmp_path / 'kern.log'}:3: no syscall")


def test_the_same_record_in_two_places_counts_once(tmp_path):
    log = read_log(str(write_log(tmp_path / "both.log", AUDIT_LOG_LINE, DMESG_LINE)))
    assert len(log.denials) == 1


def test_rate_limited_messages_are_counted(tmp_path):
    log = read_log(str(write_log(tmp_path / "kern.log", DMESG_LINE, SUPPRESSED_LINE)))
    assert log.suppressed == 20


def test_gzip_logs_are_read(tmp_path):
    path = tmp_path / "audit.log.1"
    path.write_bytes(gzip.compress((AUDIT_LOG_LINE + "\n").encode()))
    assert syscalls_from_log(path) == ["getpriority"]


def test_since_compares_the_record_audit_time(tmp_path):
    path = write_log(tmp_path / "audit.log", record_line(1000.0, 1, syscall=140), record_line(2000.0, 2, syscall=39))
    assert [d.syscall for d in read_log(str(path)).denials] == ["getpriority", "getpid"]
    later = datetime.fromtimestamp(1500, timezone.utc)
    assert [d.syscall for d in read_log(str(path), since=later).denials] == ["getpid"]


def test_syscalls_from_log_lists_each_name_once_sorted(tmp_path):
    path = write_log(
        tmp_path / "audit.log",
        record_line(1.0, 1, syscall=140),
        record_line(2.0, 2, syscall=39),
        record_line(3.0, 3, syscall=140),
        record_line(4.0, 4, syscall=999),
    )
    assert syscalls_from_log(path) == ["getpid", "getpriority"]


def test_a_running_process_is_placed_in_its_cgroup(tmp_path):
    own_cgroup = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
    now = time.time()
    path = write_log(
        tmp_path / "audit.log", record_line(now, 1, pid=os.getpid()), record_line(1.0, 2, pid=os.getpid())
    )  # before this process started: an earlier owner of the pid
    log = read_log(str(path))
    assert [d.cgroup for d in log.denials] == [None, own_cgroup]
    assert log.denials[1].container == own_cgroup
    assert log.denials[0].container == "pid %d python3 /usr/bin/python3.11" % os.getpid()
    assert [d.record_id for d in read_log(str(path), cgroup=own_cgroup).denials] == [f"{now:.3f}:1"]
    under_mount = str(cgroup_v2_root()) + own_cgroup
    assert read_log(str(path), cgroup=under_mount).denials == read_log(str(path), cgroup=own_cgroup).denials
    assert read_log(str(path), cgroup="/no/such/cgroup").denials == []


# --- the command ----------------------------------------------------------------------------


def test_cli_json_groups_by_container_with_exit_1(tmp_path):
    path = write_log(
        tmp_path / "audit.log",
        record_line(1.0, 1, syscall=140),
        record_line(2.0, 2, syscall=140),
        record_line(3.0, 3, syscall=39, code="0x00050001", pid=77),
    )
    done = tracer_cli("denials", "--source", str(path), "--format", "json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["records"] == 3
    by_container = {c["container"]: c["syscalls"] for c in report["containers"]}
    assert by_container["pid 16886 python3 /usr/bin/python3.11"] == [
        {
            "syscall": "getpriority",
            "nr": 140,
            "arch": "SCMP_ARCH_X86_64",
            "action": "log",
            "errno": None,
            "count": 2,
            "first": "1970-01-01T00:00:01.000Z",
            "last": "1970-01-01T00:00:02.000Z",
        }
    ]
    assert by_container["pid 77 python3 /usr/bin/python3.11"][0]["errno"] == "EPERM"


def test_cli_text_and_warnings(tmp_path):
    path = write_log(tmp_path / "kern.log", DMESG_LINE, SUPPRESSED_LINE, "[ 9.1] audit: type=1326 garbage")
    done = tracer_cli("denials", "--source", str(path))
    assert done.returncode == 1
    assert "getpriority" in done.stdout and "log" in done.stdout
    assert "rate limit dropped 20" in done.stderr
    assert "1 malformed seccomp records ignored" in done.stderr


def test_cli_relative_since(tmp_path):
    five_minutes_ago = time.time() - 300
    path = write_log(tmp_path / "audit.log", record_line(five_minutes_ago, 1))
    assert tracer_cli("denials", "--source", str(path), "--since", "10m").returncode == 1
    assert tracer_cli("denials", "--source", str(path), "--since", "1m").returncode == 0
    stamp = datetime.fromtimestamp(five_minutes_ago + 1, timezone.utc).isoformat()
    assert tracer_cli("denials", "--source", str(path), "--since", stamp).returncode == 0


def test_cli_no_records_exit_0(tmp_path):
    done = tracer_cli("denials", "--source", str(write_log(tmp_path / "quiet.log", "nothing here")))
    assert done.returncode == 0
    assert done.stdout.startswith("0 seccomp records")


@pytest.mark.parametrize("args", [["--source", "/no/such/log"], ["--since", "yesterday"], ["--format", "xml"]])
def test_cli_bad_input_exit_2(args):
    done = tracer_cli("denials", *args, check=False)
    assert done.returncode == 2
    assert done.stderr.strip()


def test_cli_help_is_a_man_page():
    done = tracer_cli("denials", "--help")
    assert "Exit status: 0 no records, 1 records found, 2" in " ".join(done.stdout.split())
    for option in ("--since", "--source", "--cgroup", "--format"):
        assert option in done.stdout
