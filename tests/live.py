"""Live tests: run where the machine can (root, BPF, cgroup2, runc), skip elsewhere.

Under TRACER_REQUIRE_LIVE=1 (CI on a prepared machine) a live test that cannot run fails
instead of skipping, so a broken environment is never mistaken for a pass.
"""

from __future__ import annotations

import os

import pytest


def require_live(reason: str) -> None:
    if os.environ.get("TRACER_REQUIRE_LIVE") == "1":
        pytest.fail(f"live test cannot run: {reason}")
    pytest.skip(reason)
