"""Loading a trace in bounded memory: a document the schema refuses is refused before it is held."""

from __future__ import annotations

import json
import tracemalloc

import orjson
import pytest

from support.paths import FIXTURES, REPO
from tracer.trace.format import load_trace

CASE_TRACES = {2: FIXTURES / "python-chown.trace.json", 1: REPO / "tests/data/v1/shell-nonroot.trace.json"}
MAX_SNAPSHOTS = {1: "86,400", 2: "512"}  # what the schema allows: every v1 checkpoint, the bounded v2 series


@pytest.mark.parametrize("version", [2, 1])
def test_100000_empty_snapshots_load_in_bounded_memory(version, tmp_path):
    """The same 1.2 MB of snapshots {"t": 0.0} in either version: refused by the schema's
    bound on their number, in bounded memory. (Well-formed version 2 points, 8 times the
    bytes, are refused through every command in
    tests/unit/test_trace_fuzz.py's test_issue_trace_cases.)"""
    doc = orjson.loads(CASE_TRACES[version].read_bytes())
    doc["snapshots"] = [{"t": 0.0}] * 100_000
    bad = tmp_path / "bad.trace.json"
    bad.write_text(json.dumps(doc))
    assert bad.stat().st_size < 2 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(Exception, match=f"at most {MAX_SNAPSHOTS[version]} items, got 100,000"):
            load_trace(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"loading took {peak:,} bytes"
