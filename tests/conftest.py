"""Shared fixtures: live-test prerequisites and small OCI bundles for real runc containers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/live.py
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "scripts"))  # scripts/demo.py (the demo's recipe)

from live import require_live  # noqa: E402

pytest_plugins = ("crinode",)  # the real CRI node's fixtures

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"


def live_problem() -> str | None:
    """Why this machine cannot record for real, or None."""
    if os.geteuid() != 0:
        return "not root"
    try:
        from tracer.recorder.bcc import import_bcc

        import_bcc()
    except Exception as err:  # noqa: BLE001 (any failure to load bcc means: cannot record)
        return f"bcc unavailable: {err}"
    try:
        from tracer.cgroups import cgroup_v2_root

        cgroup_v2_root()
    except Exception as err:  # noqa: BLE001
        return str(err)
    if shutil.which("runc") is None:
        return "runc is not installed"
    return None


@pytest.fixture(scope="session")
def live() -> None:
    problem = live_problem()
    if problem:
        require_live(problem)


def tracer_cli(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed CLI as a user would."""
    done = subprocess.run([str(REPO / ".venv/bin/tracer"), *args], capture_output=True, text=True, **kwargs)
    if check and done.returncode not in (0, 1):
        raise AssertionError(f"tracer {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done
