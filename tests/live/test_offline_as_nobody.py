"""Everything after recording works without root and without bcc: show and generate run as user
nobody. The test needs root to switch to nobody (the point is that the commands do not)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from support.paths import FIXTURES, REPO


def test_offline_commands_need_neither_root_nor_bcc(live):
    """Run show and generate as user nobody with bcc made unimportable."""
    tmp_path = Path(tempfile.mkdtemp(prefix="tracer-offline-"))
    shutil.copy(FIXTURES / "http-server.trace.json", tmp_path / "t.json")
    os.chmod(tmp_path, 0o777)
    os.chmod(tmp_path / "t.json", 0o644)
    site = next((REPO / ".venv/lib").glob("python3*/site-packages"))
    code = (
        "import sys; sys.modules['bcc'] = None; sys.path[:0] = [%r, %r]\n"
        "from tracer.cli import main\n"
        "sys.exit(main(['generate', %r, '--out', %r]) or main(['show', %r]))"
    ) % (str(REPO), str(site), str(tmp_path / "t.json"), str(tmp_path / "out"), str(tmp_path / "t.json"))
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    done = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", python, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out/seccomp.json").exists()
    assert "phase load" in done.stdout
    shutil.rmtree(tmp_path)
