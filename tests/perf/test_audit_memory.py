"""`tracer audit` in bounded memory: gzip bombs are refused and a large log is counted, with the
child's peak RSS well under what holding the input would take."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import orjson

from support.audit_events import denial
from support.paths import REPO

MiB = 1 << 20


def bench_audit():
    """scripts/bench-audit as a module: its synthetic-log writer."""
    loader = SourceFileLoader("bench_audit", str(REPO / "scripts" / "bench-audit"))
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def peak_rss_of(*args: str, stdout=subprocess.DEVNULL, timeout: float = 300) -> tuple[int, int, bytes]:
    """(exit status, peak RSS in bytes, stderr) of `tracer ARGS` in a child process.

    The peak is the child's own VmHWM, written to a pipe as it exits: its ru_maxrss would
    start at this (large) pytest process's peak, which Linux carries across fork and exec."""
    read_end, write_end = os.pipe()
    env = os.environ | {"PEAK_RSS_FD": str(write_end)}
    with (
        open(os.devnull, "rb") as stdin,
        subprocess.Popen(
            [sys.executable, "-c", MEASURED_TRACER, *args],
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            pass_fds=(write_end,),
            env=env,
        ) as child,
    ):
        os.close(write_end)
        err = child.communicate(timeout=timeout)[1]
    with os.fdopen(read_end) as reported:
        return child.returncode, int(reported.read()) * 1024, err


MEASURED_TRACER = """
import os, sys
from tracer.cli import main
status = main(sys.argv[1:])
with open("/proc/self/status") as proc:
    peak_kib = next(line.split()[1] for line in proc if line.startswith("VmHWM:"))
os.write(int(os.environ["PEAK_RSS_FD"]), peak_kib.encode())
sys.exit(status)
"""


def write_gzip_stream(path: Path, chunks) -> None:
    """Compress chunks one at a time: the whole input never exists in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with open(path, "wb") as out:
        for chunk in chunks:
            out.write(compressor.compress(chunk))
        out.write(compressor.flush())


def test_gzip_bomb_of_zeros_is_refused_with_flat_memory(tmp_path):
    bomb = tmp_path / "audit.log.gz"
    write_gzip_stream(bomb, (bytes(MiB) for _ in range(1024)))  # 1 GiB of zeros
    assert bomb.stat().st_size < 2 * MiB
    status, rss, err = peak_rss_of("audit", str(bomb))
    assert status == 2
    assert err.decode() == f"error: {bomb}: not a Kubernetes audit log (binary data)\n"
    assert rss < 100 * MiB


def test_gzip_bomb_of_one_endless_line_stops_at_the_line_limit(tmp_path):
    bomb = tmp_path / "audit.log.gz"
    write_gzip_stream(bomb, [orjson.dumps(denial(0)) + b"\n{"] + [b"a" * MiB for _ in range(1024)])
    status, rss, err = peak_rss_of("audit", str(bomb))
    assert status == 2
    assert err.decode() == (f"error: {bomb}: line 2 is longer than 64 MiB, the limit for one audit Event\n")
    # the line limit is the one buffer that may fill: 64 MiB over the interpreter's own ~50 MiB
    assert rss < 64 * MiB + 100 * MiB


def test_memory_stays_flat_on_a_large_log(tmp_path):
    """200,000 events, a fifth of them with Pod Security outcomes, and 2,000 klog lines:
    the report holds counts, so the child's peak RSS stays well under 100 MiB (holding the
    parsed events would take several hundred)."""
    log = tmp_path / "large.log"
    bench_audit().write_log(log, 200_000, pod_security_share=0.2, malformed_every=100)
    out = tmp_path / "report.json"
    with open(out, "wb") as stdout:
        status, rss, err = peak_rss_of("audit", "--format", "json", str(log), stdout=stdout)
    assert (status, err) == (1, b"")
    result = orjson.loads(out.read_bytes())
    assert result["events_read"] == 200_000
    assert len(result["malformed"]) == 1001
    assert result["malformed"][-1]["problem"].startswith("1000 more malformed line(s)")
    assert sum(f["count"] for f in result["findings"]) > 40_000
    assert rss < 100 * MiB
