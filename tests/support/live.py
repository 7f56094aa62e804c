"""Live tests: run where the machine can (root, BPF, cgroup2, runc), skip elsewhere.

Every prerequisite of a live test goes through require_live: under TRACER_REQUIRE_LIVE=1 (CI on
a prepared machine) a live test that cannot run fails instead of skipping, so a broken
environment is never mistaken for a pass. A fixture that checks a prerequisite depends on the
`live` fixture (conftest.py), which marks its tests live.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tracer.cgroups import cgroup_v2_root
from tracer.recorder.bcc import import_bcc


def require_live(reason: str) -> None:
    if os.environ.get("TRACER_REQUIRE_LIVE") == "1":
        pytest.fail(f"live test cannot run: {reason}")
    pytest.skip(reason)


def require_commands(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None:
            require_live(f"{name} is not installed")


def live_problem() -> str | None:
    """Why this machine cannot record for real, or None."""
    if os.geteuid() != 0:
        return "not root"
    try:
        import_bcc()
    except Exception as err:  # noqa: BLE001 (any failure to load bcc means: cannot record)
        return f"bcc unavailable: {err}"
    try:
        cgroup_v2_root()
    except Exception as err:  # noqa: BLE001
        return str(err)
    if shutil.which("runc") is None:
        return "runc is not installed"
    return None
