"""Complain mode: read back the seccomp records the kernel wrote, per container.

A profile whose defaultAction is SCMP_ACT_LOG allows everything, and each syscall outside
its allow-list makes the kernel write an audit record of type 1326 (SECCOMP). Without
auditd the kernel prints it to its own log (/dev/kmsg, dmesg, journalctl -k):

    audit: type=1326 audit(1795903130.883:2): auid=4294967295 uid=1000 gid=1000
    ses=4294967295 pid=16886 comm="python3" exe="/usr/bin/python3.11" sig=0
    arch=c000003e syscall=140 compat=0 ip=0x7f6d7f163b67 code=0x7ffc0000

(one line); with auditd it goes to /var/log/audit/audit.log instead, as
`type=SECCOMP msg=audit(...): ...` with the same fields. Either way the record carries
its own wall-clock stamp audit(SECONDS.MILLIS:SERIAL), so --since needs no monotonic
clock conversion, and SERIAL identifies one event across sources. The kernel prints
audit records through printk_ratelimit() (10 per 5 s by default); it announces the ones
it dropped later as "kauditd_printk_skb: N callbacks suppressed", counted here.
"""

from __future__ import annotations

import errno as errno_names
import gzip
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tracer.arch import UnknownArchitecture, by_audit
from tracer.cgroups import cgroup_v2_root
from tracer.errors import InputError
from tracer.syscalls import syscall_name

AUDIT_LOG = Path("/var/log/audit/audit.log")
KMSG = Path("/dev/kmsg")
SOURCES = ("auto", "audit", "kmsg", "journal")

# SECCOMP_RET_* (include/uapi/linux/seccomp.h): the top 16 bits of code= are the action,
# the low 16 bits its data (the errno number for ERRNO).
ACTION_BY_CODE = {
    0x80000000: "kill_process",
    0x00000000: "kill_thread",
    0x00030000: "trap",
    0x00050000: "errno",
    0x7FC00000: "user_notif",
    0x7FF00000: "trace",
    0x7FFC0000: "log",
    0x7FFF0000: "allow",
}
ACTION_MASK = 0xFFFF0000
DATA_MASK = 0x0000FFFF

LOOKS_LIKE_RECORD = re.compile(r"\btype=(?:1326|SECCOMP)\b")
RECORD = re.compile(r"\btype=(?:1326|SECCOMP)\s+(?:msg=)?audit\((?P<time>\d+\.\d+):(?P<serial>\d+)\):(?P<fields>.*)")
FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')
SUPPRESSED = re.compile(r"kauditd_printk_skb: (\d+) callbacks suppressed")
REQUIRED_FIELDS = ("pid", "arch", "syscall", "code")


class MalformedRecord(ValueError):
    pass


@dataclass(frozen=True)
class Denial:
    """One seccomp record: a syscall the filter did not simply allow."""

    time: datetime
    pid: int
    comm: str
    exe: str
    arch: str  # OCI name (SCMP_ARCH_X86_64), or "audit arch 0x..." when unknown
    syscall_nr: int
    syscall: str | None  # None when libseccomp has no name for the number on that arch
    action: str  # log, errno, kill_process, kill_thread, trap, trace, user_notif
    cgroup: str | None  # the process's cgroup v2 path, while it still runs
    errno: str | None = None  # with action errno: the errno returned (EPERM)
    record_id: str = ""  # the audit stamp SECONDS.MILLIS:SERIAL, unique within a boot

    @property
    def container(self) -> str:
        """What the record is grouped by: the cgroup, or the process when it is gone."""
        return self.cgroup or f"pid {self.pid} {self.comm} {self.exe}"

    @property
    def syscall_label(self) -> str:
        return self.syscall or f"#{self.syscall_nr}"

    def to_dict(self) -> dict:
        return {
            "time": format_time(self.time),
            "pid": self.pid,
            "comm": self.comm,
            "exe": self.exe,
            "arch": self.arch,
            "syscall_nr": self.syscall_nr,
            "syscall": self.syscall,
            "action": self.action,
            "errno": self.errno,
            "cgroup": self.cgroup,
            "record_id": self.record_id,
        }


@dataclass
class DenialLog:
    """What one read found: the records, and what stood in the way of reading all of them."""

    sources: list[str] = field(default_factory=list)
    denials: list[Denial] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # "WHERE:LINE: problem"
    # Audit messages of any type the kernel's printk rate limit dropped.
    suppressed: int = 0


# --- parsing one record -------------------------------------------------------------------


def parse_record(line: str, cgroup_of=None) -> Denial | None:
    """The Denial in `line`, None when it holds no seccomp record; MalformedRecord when it
    looks like one but cannot be read. `cgroup_of(pid, time)` places a running process."""
    if not LOOKS_LIKE_RECORD.search(line):
        return None
    match = RECORD.search(line)
    if not match:
        raise MalformedRecord("no audit(SECONDS.MILLIS:SERIAL) stamp")
    fields = dict(FIELD.findall(match["fields"]))
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise MalformedRecord(f"no {', '.join(missing)}")
    try:
        pid, syscall_nr = int(fields["pid"]), int(fields["syscall"])
        audit_arch, code = int(fields["arch"], 16), int(fields["code"], 16)
    except ValueError as err:
        raise MalformedRecord(f"bad number ({err})") from None
    time = datetime.fromtimestamp(float(match["time"]), timezone.utc)
    action, errno = decode_action(code)
    known = by_audit(audit_arch)
    arch = known.oci if known else f"audit arch 0x{audit_arch:08x}"
    return Denial(
        time=time,
        pid=pid,
        comm=untrusted_string(fields.get("comm", "")),
        exe=untrusted_string(fields.get("exe", "")),
        arch=arch,
        syscall_nr=syscall_nr,
        syscall=resolve_syscall(arch, syscall_nr),
        action=action,
        cgroup=cgroup_of(pid, time) if cgroup_of else None,
        errno=errno,
        record_id=f"{match['time']}:{match['serial']}",
    )


def decode_action(code: int) -> tuple[str, str | None]:
    """(action, errno name for ERRNO) from a record's code= value."""
    action = ACTION_BY_CODE.get(code & ACTION_MASK, f"unknown 0x{code:08x}")
    if action != "errno":
        return action, None
    number = code & DATA_MASK
    return action, errno_names.errorcode.get(number, str(number))


def resolve_syscall(arch: str, nr: int) -> str | None:
    try:
        return syscall_name(arch, nr)
    except UnknownArchitecture:
        return None


def untrusted_string(value: str) -> str:
    """An audit string field: "quoted", or hex when it held a space, quote or control
    character (audit_log_untrustedstring), or a bare word such as (null)."""
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return value[1:-1]
    if re.fullmatch(r"(?:[0-9A-F]{2})+", value):
        return bytes.fromhex(value).decode(errors="replace")
    return value


# --- which container ----------------------------------------------------------------------


def cgroup_lookup():
    """`lookup(pid, time)`: the cgroup v2 path (as /proc/PID/cgroup shows it) of the process
    that wrote a record at `time`, while it still runs; each pid is read once."""
    processes: dict[int, tuple[float, str] | None] = {}

    def lookup(pid: int, time: datetime) -> str | None:
        if pid not in processes:
            processes[pid] = running_process(pid)
        found = processes[pid]
        # A process started after the record only reuses the pid (btime has whole seconds).
        if found is None or found[0] > time.timestamp() + 1:
            return None
        return found[1]

    return lookup


def running_process(pid: int) -> tuple[float, str] | None:
    """(start time, cgroup v2 path) of a running process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        # field 22, counted after the parenthesised comm (which may hold spaces)
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
    cgroup = next((line[3:] for line in lines if line.startswith("0::")), None)
    if cgroup is None:
        return None
    return boot_time() + ticks / os.sysconf("SC_CLK_TCK"), cgroup


def boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("/proc/stat has no btime")


def normalize_cgroup(path: str) -> str:
    """A cgroup as /proc/PID/cgroup shows it, from that form, a relative path or a path
    under the cgroup2 mount."""
    try:
        mount = str(cgroup_v2_root())
    except InputError:  # no cgroup2 mount here: a saved log may still name cgroups
        mount = "/sys/fs/cgroup"
    if path == mount or path.startswith(mount + "/"):
        path = path[len(mount) :]
    return "/" + path.strip("/")


# --- reading sources ----------------------------------------------------------------------

# A source gives (where, line number, kernel-log wall time or None, text) per line.
Line = tuple[str, int, float | None, str]


def source_lines(source: str) -> tuple[list[str], Iterator[Line]]:
    """The names of the sources `source` stands for, and their lines."""
    if source == "audit":
        return [str(AUDIT_LOG)], file_lines(AUDIT_LOG)
    if source == "kmsg":
        return [str(KMSG)], kmsg_lines()
    if source == "journal":
        return ["journalctl -k"], journal_lines()
    if source == "auto":
        return auto_lines()
    return [source], file_lines(Path(source))


def auto_lines() -> tuple[list[str], Iterator[Line]]:
    """audit.log when auditd keeps one, and the kernel log: without auditd the kernel prints
    the records. Records found in both are counted once (by their audit serial)."""
    names, parts = [], []
    if AUDIT_LOG.is_file():
        names.append(str(AUDIT_LOG))
        parts.append(file_lines(AUDIT_LOG))
    if os.access(KMSG, os.R_OK):
        names.append(str(KMSG))
        parts.append(kmsg_lines())
    if not names:
        raise InputError(
            KMSG, f"cannot read the kernel log and there is no {AUDIT_LOG} (run as root, or --source journal|FILE)"
        )
    return names, (line for part in parts for line in part)


def file_lines(path: Path) -> Iterator[Line]:
    """A saved log (audit.log, dmesg or journalctl output; plain or gzip; - for stdin)."""
    text = sys.stdin.read() if str(path) == "-" else read_text(path)
    for number, line in enumerate(text.splitlines(), 1):
        yield str(path), number, None, line


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        hint = " (auditd is not running here: try --source kmsg)" if path == AUDIT_LOG else ""
        raise InputError(path, f"not found{hint}") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory") from None
    except OSError as err:
        raise InputError(path, err.strerror or str(err)) from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise InputError(path, f"bad gzip: {err}") from None
    return data.decode(errors="replace")


def kmsg_lines() -> Iterator[Line]:
    """The kernel's log buffer from /dev/kmsg: one read returns one record,
    "PRIORITY,SEQUENCE,MICROSECONDS_SINCE_BOOT,FLAGS;MESSAGE"."""
    try:
        fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise InputError(KMSG, f"{err.strerror} (kernel.dmesg_restrict: run as root, or --source FILE)") from None
    boot = boot_time()
    try:
        for record in kmsg_records(fd):
            prefix, _, message = record.partition(";")
            sequence, micros = prefix.split(",")[1:3]
            yield str(KMSG), int(sequence), boot + int(micros) / 1e6, message.split("\n", 1)[0]
    finally:
        os.close(fd)


def kmsg_records(fd: int) -> Iterator[str]:
    while True:
        try:
            data = os.read(fd, 16384)
        except BlockingIOError:  # read everything there is
            return
        except BrokenPipeError:  # the oldest records were overwritten while reading
            continue
        if not data:
            return
        yield data.decode(errors="replace")


def journal_lines() -> Iterator[Line]:
    if shutil.which("journalctl") is None:
        raise InputError("journalctl", "not installed (try --source kmsg)")
    done = subprocess.run(["journalctl", "-k", "--no-pager", "-o", "short-iso"], capture_output=True, text=True)
    if done.returncode != 0 or "No journal files were found" in done.stderr:
        raise InputError(
            "journalctl", done.stderr.strip().splitlines()[0] if done.stderr.strip() else f"exited {done.returncode}"
        )
    for number, line in enumerate(done.stdout.splitlines(), 1):
        yield "journalctl -k", number, None, line


# --- reading ------------------------------------------------------------------------------


def read_log(source: str = "auto", since: datetime | None = None, cgroup: str | None = None) -> DenialLog:
    """Every seccomp record in `source` (auto, audit, kmsg, journal or a file) at or after
    `since`, placed in running containers' cgroups, optionally only those of `cgroup`."""
    names, lines = source_lines(source)
    log, seen = DenialLog(sources=names), set()
    lookup = cgroup_lookup()
    wanted = normalize_cgroup(cgroup) if cgroup else None
    for where, number, logged_at, text in lines:
        count_suppressed(log, text, logged_at, since)
        try:
            denial = parse_record(text, cgroup_of=lookup)
        except MalformedRecord as problem:
            log.malformed.append(f"{where}:{number}: {problem}")
            continue
        if denial is None or denial.record_id in seen or (since and denial.time < since):
            continue
        seen.add(denial.record_id)
        if wanted is None or denial.cgroup == wanted:
            log.denials.append(denial)
    log.denials.sort(key=lambda d: (d.time, d.record_id))
    return log


def count_suppressed(log: DenialLog, text: str, logged_at: float | None, since: datetime | None) -> None:
    match = SUPPRESSED.search(text)
    if match and not (since and logged_at is not None and logged_at < since.timestamp()):
        log.suppressed += int(match[1])


def read_denials(source: str = "auto", since: datetime | None = None) -> list[Denial]:
    return read_log(source, since).denials


def syscalls_from_log(
    path_or_source: str | os.PathLike, since: datetime | None = None, arch: str | None = None
) -> list[str]:
    """The distinct syscall names in a log's seccomp records (any action), sorted: what a
    complain-mode run says the profile still lacks. `path_or_source` is a saved log or one
    of auto, audit, kmsg, journal. Numbers with no name on their arch are left out (they
    cannot go into a profile); `tracer denials` lists them. `arch` keeps one architecture's."""
    names = {
        d.syscall
        for d in read_denials(str(path_or_source), since)
        if d.syscall and d.action != "allow" and arch in (None, d.arch)
    }
    return sorted(names)


# --- reporting ----------------------------------------------------------------------------


def format_time(time: datetime) -> str:
    return time.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summarize(denials: Iterable[Denial]) -> list[dict]:
    """Per container, per (syscall, arch, action): count, first and last time."""
    containers: dict[str, dict] = {}
    for d in denials:
        entry = containers.setdefault(
            d.container, {"container": d.container, "cgroup": d.cgroup, "pids": [], "syscalls": {}}
        )
        if d.pid not in entry["pids"]:
            entry["pids"].append(d.pid)
        key = (d.syscall_label, d.arch, d.action, d.errno)
        row = entry["syscalls"].setdefault(
            key,
            {
                "syscall": d.syscall,
                "nr": d.syscall_nr,
                "arch": d.arch,
                "action": d.action,
                "errno": d.errno,
                "count": 0,
                "first": format_time(d.time),
            },
        )
        row["count"] += 1
        row["last"] = format_time(d.time)
    return [{**c, "syscalls": list(c["syscalls"].values())} for c in containers.values()]


def log_to_dict(log: DenialLog, since: datetime | None) -> dict:
    return {
        "sources": log.sources,
        "since": format_time(since) if since else None,
        "records": len(log.denials),
        "containers": summarize(log.denials),
        "denials": [d.to_dict() for d in log.denials],
        "malformed": log.malformed,
        "suppressed": log.suppressed,
    }


def format_text(log: DenialLog, since: datetime | None) -> str:
    window = f" since {format_time(since)}" if since else ""
    lines = [f"{len(log.denials)} seccomp records in {', '.join(log.sources)}{window}"]
    for container in summarize(log.denials):
        state = "cgroup" if container["cgroup"] else "exited"
        lines.append(f"{container['container']} ({state})")
        for row in container["syscalls"]:
            name = row["syscall"] or f"#{row['nr']} ({row['arch']})"
            action = f"errno {row['errno']}" if row["errno"] else row["action"]
            lines.append(f"  {name:<20} {action:<14} {row['count']:>5}x  {row['first']} .. {row['last']}")
    return "\n".join(lines)


def format_warnings(log: DenialLog) -> list[str]:
    warnings = []
    if log.suppressed:
        warnings.append(
            f"warning: the kernel's printk rate limit dropped {log.suppressed} audit messages; "
            "some seccomp records may be missing (raise kernel.printk_ratelimit_burst, or run auditd)"
        )
    if log.malformed:
        warnings.append(f"warning: {len(log.malformed)} malformed seccomp records ignored, first {log.malformed[0]}")
    return warnings
