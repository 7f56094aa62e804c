"""The mini-NIM as a real runc container in its own network namespace, loaded from inside that
namespace: it serves, runs as uid 1000 on a read-only root and stops on its stop signal.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from support.live import require_live
from tracer import loadtest, runc
from tracer.embedded.bundle import mininim_bundle
from tracer.embedded.mininim.model import MODEL_NAME
from tracer.network import netns
from tracer.oci import stop_signal


def require_mininim_host() -> None:
    """What the container needs beyond the live prerequisites: iproute2 and Debian's numpy."""
    if shutil.which("ip") is None:
        require_live("iproute2 (ip) is not installed")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import numpy"], capture_output=True)
    if probe.returncode != 0:
        require_live("Debian python3-numpy is not installed (scripts/setup installs it)")


class Container:
    def __init__(self, container_id: str, netns_name: str, bundle: Path, pid: int, ready_s: float, log: Path):
        self.id, self.netns, self.bundle, self.pid, self.ready_s, self.log = (
            container_id,
            netns_name,
            bundle,
            pid,
            ready_s,
            log,
        )


@pytest.fixture
def container(live, tmp_path):
    require_mininim_host()
    container_id = f"mininim-test-{uuid.uuid4().hex[:8]}"
    netns_name = netns.unique_name("mininim-test")
    runc.become_subreaper()
    with netns.network_namespace(netns_name) as netns_path:
        bundle = mininim_bundle(tmp_path / "bundle", netns_path=netns_path)
        log = tmp_path / "container.log"
        pid = None
        try:
            with open(log, "wb") as output:
                started = time.monotonic()
                pid = runc.create(bundle, container_id, stdout=output, stderr=output)
            runc.start(container_id)
            netns.call_in(netns_name, loadtest.wait_ready, loadtest.parse_endpoint(loadtest.LoadOptions()), 60)
            yield Container(container_id, netns_name, bundle, pid, time.monotonic() - started, log)
        finally:
            runc.delete(container_id, force=True)
            reap_quietly(pid)
    assert not leftover_cgroups(container_id)


def reap_quietly(pid: int | None) -> None:
    try:
        if pid:
            runc.wait_exit(pid, timeout=5)
    except (ChildProcessError, TimeoutError):
        pass


def leftover_cgroups(container_id: str) -> list[Path]:
    return list(Path("/sys/fs/cgroup").glob(f"*/{container_id}")) + list(
        Path("/sys/fs/cgroup").glob(f"*/*/{container_id}")
    )


def runc_exec(container_id: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runc", "exec", container_id, "/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=30
    )


def test_mininim_serves_a_load_test_in_its_netns(container):
    options = loadtest.LoadOptions(requests=200, concurrency=8, netns=container.netns, time_limit=120)
    report = loadtest.run_load(options)
    print(f"\nmini-NIM ready {container.ready_s:.3f}s after runc create\n{loadtest.format_text(report)}")
    assert report.error_count == 0 and report.ok == 200
    assert report.model == MODEL_NAME
    assert (Path(f"/proc/{container.pid}/root/tmp/mininim/requests.log").read_text().count("\n")) == 200


def test_mininim_runs_as_uid_1000_on_a_read_only_root(container):
    status = Path(f"/proc/{container.pid}/status").read_text()
    ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines() if line.startswith(("Uid", "Gid"))}
    assert ids == {"Uid": ["1000"] * 4, "Gid": ["1000"] * 4}
    probe = runc_exec(
        container.id,
        "import os\n"
        "try:\n    open('/probe', 'w')\nexcept OSError as err:\n    print('root', err.errno)\n"
        "try:\n    open('/opt/nim/model/probe', 'w')\nexcept OSError as err:\n    print('model', err.errno)\n"
        "open('/tmp/probe', 'w').write('ok'); print('tmp ok', os.getuid())",
    )
    assert probe.returncode == 0, probe.stderr
    # EROFS (30) for / and the model volume; the uid 1000 user may still write its tmpfs.
    assert probe.stdout.split("\n")[:3] == ["root 30", "model 30", "tmp ok 1000"]


def test_mininim_stops_cleanly_on_its_stop_signal(container):
    runc.kill(container.id, stop_signal(container.bundle))
    assert runc.wait_exit(container.pid, timeout=30) == 0
    assert runc.state(container.id)["status"] == "stopped"
    runc.delete(container.id, force=False)
    assert not runc.exists(container.id)
    assert "mininim: stopped" in container.log.read_text()
