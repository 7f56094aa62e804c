"""Test-suite wiring: where helpers are found, the live prerequisite, and the kinds of test.

The folder says the kind: `unit/` and `conformance/` run anywhere, `live/` needs root, BPF and
runc, `perf/` measures bounds on memory, size and time (marked `perf`; a plain `pytest` leaves
it out unless given --perf, `-m perf` or a path under tests/perf/; `.ci/run` gives --perf). A test is live exactly when it
uses the `live` fixture (directly or through another fixture); it is then marked `live`, so
`pytest -m "not live"` is the offline suite. A live test outside `live/`, or a test in `live/`
that is not live, is a collection error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # tests/support
sys.path.insert(1, str(TESTS.parent / "scripts"))  # scripts/demo.py (the demo's recipe)

from support.live import live_problem, require_live  # noqa: E402

pytest_plugins = ("support.crinode",)  # the real CRI node's fixtures


def pytest_addoption(parser):
    parser.addoption("--perf", action="store_true", help="also run the perf tests (tests/perf/)")


@pytest.fixture(scope="session")
def live() -> None:
    problem = live_problem()
    if problem:
        require_live(problem)


def kind_of(item: pytest.Item) -> str:
    """The folder under tests/ that holds the test: unit, live, conformance or perf."""
    return item.path.relative_to(TESTS).parts[0]


def misfiled(item: pytest.Item, uses_live: bool) -> str | None:
    if item.get_closest_marker("live") and not uses_live:
        return "is marked live by hand: use the live fixture, which checks the prerequisites"
    if uses_live and kind_of(item) != "live":
        return "uses the live fixture: it belongs under tests/live/"
    if kind_of(item) == "live" and not uses_live:
        return "is under tests/live/ without the live fixture: move it to tests/unit/ or give it the fixture"
    return None


def perf_wanted(config) -> bool:
    """--perf, a -m expression that names perf, or a path under tests/perf/ asks for them."""
    perf = TESTS / "perf"
    named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    return (
        config.getoption("--perf")
        or "perf" in config.getoption("markexpr", "")
        or any(path == perf or perf in path.parents for path in named)
    )


def pytest_collection_modifyitems(config, items):
    problems = []
    for item in items:
        uses_live = "live" in getattr(item, "fixturenames", ())
        problem = misfiled(item, uses_live)
        if problem:
            problems.append(f"{item.nodeid} {problem}")
        if uses_live:
            item.add_marker(pytest.mark.live)
        if kind_of(item) == "perf":
            item.add_marker(pytest.mark.perf)
    if problems:
        raise pytest.UsageError("tests filed under the wrong kind:\n  " + "\n  ".join(problems))
    if not perf_wanted(config):
        perf = [item for item in items if kind_of(item) == "perf"]
        config.hook.pytest_deselected(items=perf)
        items[:] = [item for item in items if kind_of(item) != "perf"]
