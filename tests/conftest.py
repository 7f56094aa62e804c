"""Test-suite wiring: where helpers are found, the live prerequisite, and the kinds of test.

The folder says the kind: `unit/` and `conformance/` run anywhere, `live/` needs root, BPF and
runc, `perf/` measures bounds (left out of a plain `pytest`, included by `.ci/run`). A test is
live exactly when it uses the `live` fixture (directly or through another fixture); it is then
marked `live`, so `pytest -m "not live"` is the offline suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/support
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "scripts"))  # scripts/demo.py (the demo's recipe)

from support.live import live_problem, require_live  # noqa: E402

pytest_plugins = ("support.crinode",)  # the real CRI node's fixtures


@pytest.fixture(scope="session")
def live() -> None:
    problem = live_problem()
    if problem:
        require_live(problem)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "live" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.live)
