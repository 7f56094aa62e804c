"""Faults: whatever happens to the tracer, what it started dies with it, what it made is
removed, what it did not make is untouched, and no recorded data is lost.

Every run gets its own scratch directory (TMPDIR) and unique workload markers, so these
tests look only at their own leftovers on a machine that others use at the same time.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from support.paths import REPO
from support.waiting import wait_for
from tracer import runc
from tracer.cgroups import TRACER_PARENT, _v1_mounts, cgroup_v2_root
from tracer.embedded.bundle import make_bundle
from tracer.trace.format import load_trace

pytestmark = pytest.mark.usefixtures("live")

TRACER = str(REPO / ".venv/bin/tracer")


class Run:
    """One `tracer` process with its own scratch directory and stderr file."""

    started: list[Run] = []

    def __init__(self, tmp_path: Path, *args: str, env: dict | None = None):
        self.scratch = tmp_path / f"scratch-{uuid.uuid4().hex[:6]}"
        self.scratch.mkdir()
        self.stderr_path = tmp_path / f"stderr-{uuid.uuid4().hex[:6]}"
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [TRACER, *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "TMPDIR": str(self.scratch), **(env or {})},
            )
        self.pid = self.process.pid
        Run.started.append(self)

    def wait(self, timeout: float = 60) -> int:
        self.process.communicate(timeout=timeout)
        # the watchdog (it shares our stderr) is done once it has written its line and exited
        wait_for(lambda: not processes_with(f"tracer.owned {self.pid}"), 30)
        return self.process.returncode

    def kill(self, signum: int) -> None:
        os.kill(self.pid, signum)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def leftovers(self, *markers: str) -> list[str]:
        """Anything of this run still there: cgroups (v2, v1), scratch files, processes."""
        found = [str(path) for path in tracer_cgroups(self.pid)]
        found += [str(path) for path in self.scratch.iterdir()]
        for marker in (*markers, f"tracer.owned {self.pid}"):
            found += [f"process {pid}: {marker}" for pid in processes_with(marker)]
        return found


@pytest.fixture(autouse=True)
def no_tracer_outlives_its_test():
    """A failed test must not leave its tracer recording: SIGTERM stops it cleanly."""
    yield
    while Run.started:
        process = Run.started.pop().process
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=60)


def tracer_cgroups(pid: int) -> list[Path]:
    """The cgroups tracer `pid` made (their names carry its pid), in every hierarchy."""
    roots = [cgroup_v2_root(), *_v1_mounts().values()]
    return [path for root in roots for path in (root / TRACER_PARENT).glob(f"*-{pid}-*")]


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def sleeping(nap: str) -> list[int]:
    """The `sleep NAP` processes."""
    return [
        pid
        for pid in processes_with(f"sleep {nap}")
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0")
    ]


def unique_sleep() -> str:
    """A sleep whose command line no one else's process has."""
    return f"{300 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"


def one_line_error(stderr: str) -> str:
    """The single `error:` line, and no traceback."""
    assert "Traceback" not in stderr, stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    return line


# ---------------------------------------------------------------- signals and kills


def test_sigkill_of_the_tracer_kills_the_workload_and_its_grandchildren(tmp_path):
    trace_path = tmp_path / "killed.trace.json"
    nap = unique_sleep()
    run = Run(
        tmp_path,
        "record",
        "--interval",
        "0.2",
        "--out",
        str(trace_path),
        "--",
        "/bin/sh",
        "-c",
        f"sleep {nap} & sleep {nap}; true",
    )
    wait_for(lambda: trace_path.exists() and len(sleeping(nap)) == 2, 20)
    run.kill(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    assert run.leftovers(f"sleep {nap}") == []
    assert "tracer watchdog:" in run.stderr and "stopped and removed cgroup" in run.stderr
    assert load_trace(trace_path).metadata["complete"] is False  # the last checkpoint: whole, valid


def test_sigkill_of_the_tracer_deletes_the_container_it_created(tmp_path):
    nap = unique_sleep()
    bundle = make_bundle(tmp_path / "bundle", ["/bin/sh", "-c", f"sleep {nap}; true"])
    container = f"lc-{uuid.uuid4().hex[:8]}"
    trace_path = tmp_path / "runc.trace.json"
    run = Run(
        tmp_path,
        "record",
        "--runc-bundle",
        str(bundle),
        "--runc-id",
        container,
        "--interval",
        "0.2",
        "--out",
        str(trace_path),
    )
    wait_for(lambda: trace_path.exists() and sleeping(nap), 20)
    assert runc.state(container)["status"] == "running"
    run.kill(signal.SIGKILL)
    run.wait()
    assert not runc.exists(container)
    assert run.leftovers(f"sleep {nap}") == []  # bundle copy, cgroups v2 and v1, processes


def test_sigkill_of_the_tracer_stops_a_container_it_started_but_keeps_it(tmp_path):
    nap = unique_sleep()
    bundle = make_bundle(tmp_path / "bundle", ["/bin/sh", "-c", f"sleep {nap}; true"])
    container = f"lc-{uuid.uuid4().hex[:8]}"
    runc.become_subreaper()
    pid = runc.create(bundle, container)
    try:
        trace_path = tmp_path / "started.trace.json"
        run = Run(tmp_path, "record", "--runc", container, "--interval", "0.2", "--out", str(trace_path))
        wait_for(lambda: trace_path.exists() and sleeping(nap), 20)
        run.kill(signal.SIGKILL)
        run.wait()
        assert runc.state(container)["status"] == "stopped"  # stopped with the recording, not deleted
        assert run.leftovers(f"sleep {nap}") == []
    finally:
        runc.delete(container, force=True)
        runc.wait_exit(pid, timeout=10)


def test_sigterm_during_the_bpf_load_ends_cleanly_before_the_workload_starts(tmp_path):
    trace_path = tmp_path / "early.trace.json"
    nap = unique_sleep()
    run = Run(tmp_path, "record", "--out", str(trace_path), "--", "sleep", nap)
    wait_for(lambda: tracer_cgroups(run.pid), 20, interval=0.005)  # the target is made: the BPF load is next
    time.sleep(0.05)
    run.kill(signal.SIGTERM)
    assert run.wait() == 1  # the workload's start was missed
    if trace_path.exists():
        trace = load_trace(trace_path)
        assert trace.metadata["complete"] is True and trace.metadata["stopped_by"] == "SIGTERM"
        assert trace.metadata["workload_started"] is False and trace.metadata["workload_exit_status"] is None
        assert "start-up missed" in run.stderr
    else:
        assert "stopped by SIGTERM before the recording began" in one_line_error(run.stderr)
    assert "Traceback" not in run.stderr
    assert run.leftovers(f"sleep {nap}") == []


def test_sigterm_stops_the_workload_with_its_grandchildren(tmp_path):
    trace_path = tmp_path / "late.trace.json"
    nap = unique_sleep()
    run = Run(tmp_path, "record", "--out", str(trace_path), "--", "/bin/sh", "-c", f"sleep {nap}; true")
    wait_for(lambda: trace_path.exists() and sleeping(nap), 20)
    run.kill(signal.SIGTERM)
    assert run.wait() == 0  # a complete recording, stopped on request
    trace = load_trace(trace_path)
    assert trace.metadata["complete"] is True and trace.metadata["stopped_by"] == "SIGTERM"
    assert trace.metadata["workload_exit_status"] == 128 + signal.SIGTERM
    assert "workload exit status: 143" in run.stderr
    assert run.leftovers(f"sleep {nap}") == []


def test_a_workload_that_leaves_a_background_child_has_it_killed_at_the_end(tmp_path):
    nap = unique_sleep()
    run = Run(
        tmp_path, "record", "--out", str(tmp_path / "bg.trace.json"), "--", "/bin/sh", "-c", f"sleep {nap} & exit 0"
    )
    assert run.wait() == 0
    assert run.leftovers(f"sleep {nap}") == []


# ---------------------------------------------------------------- the machine fails


def test_a_bpf_load_failure_is_one_line_exit_3_and_leaves_nothing(tmp_path):
    # A map far larger than the kernel allows: the load fails naturally, at map creation.
    nap = unique_sleep()
    trace_path = tmp_path / "bpf.trace.json"
    run = Run(
        tmp_path, "record", "--out", str(trace_path), "--", "sleep", nap, env={"TRACER_CAP_MAP_ENTRIES": str(2**31 - 1)}
    )
    assert run.wait() == 3
    line = one_line_error(run.stderr)
    assert line.startswith("error: BPF: the recorder could not be loaded:") and "cap_checks" in line
    assert run.stderr.strip() == line  # bcc's own lines are folded into it
    assert not trace_path.exists()
    assert run.leftovers(f"sleep {nap}") == []


def test_an_existing_container_id_is_refused_before_anything_is_made(tmp_path):
    bundle = make_bundle(tmp_path / "bundle", ["/bin/sh", "-c", "sleep 30"])
    container = f"lc-{uuid.uuid4().hex[:8]}"
    runc.become_subreaper()
    pid = runc.create(bundle, container)
    try:
        run = Run(
            tmp_path,
            "record",
            "--runc-bundle",
            str(bundle),
            "--runc-id",
            container,
            "--out",
            str(tmp_path / "clash.trace.json"),
        )
        assert run.wait() == 2
        assert f"runc container {container}: already exists" in one_line_error(run.stderr)
        assert runc.state(container)["status"] == "created"  # the other container is untouched
        assert runc.state(container)["bundle"] == str(bundle)
        assert run.leftovers() == []
    finally:
        runc.delete(container, force=True)
        runc.wait_exit(pid, timeout=10)


def test_default_container_ids_are_unique_per_run(tmp_path):
    bundle = make_bundle(tmp_path / "bundle", ["/bin/true"])
    ids = []
    for n in range(2):
        trace_path = tmp_path / f"id{n}.trace.json"
        run = Run(tmp_path, "record", "--runc-bundle", str(bundle), "--out", str(trace_path))
        assert run.wait() == 0, run.stderr
        ids.append(load_trace(trace_path).metadata["target"]["name"])
        assert run.leftovers() == []
    assert ids[0] != ids[1] and all(i.startswith("tracer-") for i in ids)


def test_verify_with_a_bundle_runc_rejects_is_one_line_exit_3(tmp_path):
    bundle = make_bundle(tmp_path / "bundle", ["/nonexistent/binary"])
    run = Run(tmp_path, "verify", str(REPO / "profiles/mini-nim"), "--bundle", str(bundle), "--no-probe")
    assert run.wait() == 3
    line = one_line_error(run.stderr)
    assert line.startswith("error: runc create verify-") and "/nonexistent/binary" in line
    assert run.leftovers() == []
    assert not [c for c in runc_ids() if c.startswith(f"verify-{run.pid}-")]


def runc_ids() -> list[str]:
    listed = subprocess.run(["runc", "list", "--format", "json"], capture_output=True, text=True, check=True).stdout
    return [container["id"] for container in json.loads(listed) or []]


# ---------------------------------------------------------------- the disk fails


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs, unmounted afterwards."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)], check=True)
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(disk: Path) -> Path:
    """Write zeros to DISK until it is full."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while handle.write(b"\0" * 4096):
                pass
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


def test_a_full_disk_fails_checkpoints_but_not_the_workload_and_they_are_retried(tmp_path, small_disk):
    trace_path = small_disk / "full.trace.json"
    marker = tmp_path / "workload-finished"
    run = Run(
        tmp_path,
        "record",
        "--interval",
        "0.2",
        "--out",
        str(trace_path),
        "--",
        "/bin/sh",
        "-c",
        f"sleep 2.5; echo done > {marker}",
    )
    wait_for(trace_path.exists, 20)
    filler = fill(small_disk)
    wait_for(lambda: "checkpoint 2 failed" in run.stderr, 20)
    filler.unlink()
    assert run.wait() == 0, run.stderr
    assert marker.read_text() == "done\n"  # the workload ran to its end
    trace = load_trace(trace_path)
    assert trace.metadata["complete"] is True and trace.metadata["workload_exit_status"] == 0
    failures = [line for line in run.stderr.splitlines() if "failed, recording goes on" in line]
    assert trace.metadata["checkpoint_failures"] == len(failures) >= 2
    assert all("No space left on device" in line for line in failures)
    assert run.leftovers() == []


def test_a_disk_that_stays_full_is_exit_3_and_keeps_the_last_checkpoint(tmp_path, small_disk):
    trace_path = small_disk / "full.trace.json"
    marker = tmp_path / "workload-finished"
    run = Run(
        tmp_path,
        "record",
        "--interval",
        "0.2",
        "--out",
        str(trace_path),
        "--",
        "/bin/sh",
        "-c",
        f"sleep 1.5; echo done > {marker}",
    )
    wait_for(trace_path.exists, 20)
    fill(small_disk)
    assert run.wait() == 3
    line = one_line_error(run.stderr)
    assert "the final trace could not be written" in line and "the last checkpoint written is kept" in line
    assert marker.read_text() == "done\n"
    trace = load_trace(trace_path)  # the last checkpoint: whole and valid
    assert trace.metadata["complete"] is False and trace.snapshots
    assert [p.name for p in small_disk.iterdir()] == ["filler", "full.trace.json"]  # no temporary files
    assert run.leftovers() == []


def test_a_read_only_output_directory_is_exit_3_before_anything_starts(tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(readonly)], check=True)
    try:
        nap = unique_sleep()
        run = Run(tmp_path, "record", "--out", str(readonly / "t.json"), "--", "sleep", nap)
        assert run.wait() == 3
        assert one_line_error(run.stderr) == f"error: {readonly}/t.json: cannot write: Read-only file system"
        assert run.leftovers(f"sleep {nap}") == []
    finally:
        subprocess.run(["umount", "-l", str(readonly)], check=True)


@pytest.mark.parametrize("where", ["directory", "under a file"])
def test_an_impossible_output_path_is_exit_2_before_anything_starts(tmp_path, where):
    (tmp_path / "file").write_text("x")
    out = tmp_path if where == "directory" else tmp_path / "file" / "t.json"
    run = Run(tmp_path, "record", "--out", str(out), "--", "true")
    assert run.wait() == 2
    expected = "is a directory" if where == "directory" else f"{tmp_path}/file is not a directory"
    assert expected in one_line_error(run.stderr)
    assert run.leftovers() == []
