"""Recipes for the fixture traces in fixtures/: real workloads recorded by `tracer record`.

Run through scripts/record-fixtures. Each recipe builds what it needs in a temporary
directory, records it with the CLI exactly as a user would, and writes
fixtures/<name>.trace.json.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tracer.embedded.bundle import make_bundle, mininim_bundle
from tracer.network.observe import free_port

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
TRACER = str(REPO / ".venv/bin/tracer")

CHOWN_SCRIPT = """
import os
with open('/tmp/f', 'w') as f:
    f.write('x')
os.chown('/tmp/f', 1234, 1234)
print('owner', os.stat('/tmp/f').st_uid)
"""

NONROOT_PIPELINE = "ls -l /usr/bin | sort | head -3; wc -l /etc/passwd; touch /tmp/x; chown 0 /tmp/x || true"


def record(name: str, *args: str) -> None:
    out = FIXTURES / f"{name}.trace.json"
    subprocess.run([TRACER, "record", "--out", str(out), *args], check=True)
    print(f"recorded {out}", file=sys.stderr)


def python_chown(workdir: Path) -> None:
    """A root container with CHOWN, NET_RAW, KILL that chowns a file: runc set-up + workload."""
    bundle = make_bundle(
        workdir / "bundle",
        ["/usr/bin/python3", "-c", CHOWN_SCRIPT],
        uid=0,
        gid=0,
        capabilities=["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"],
    )
    record("python-chown", "--runc-bundle", str(bundle), "--runc-id", "fixture-python-chown")


def shell_nonroot(workdir: Path) -> None:
    """A shell pipeline as uid 1000 on a read-only root: capability checks that are denied."""
    bundle = make_bundle(workdir / "bundle", ["/bin/sh", "-c", NONROOT_PIPELINE], uid=1000, gid=1000)
    record("shell-nonroot", "--runc-bundle", str(bundle), "--runc-id", "fixture-shell-nonroot")


def http_server(workdir: Path) -> None:
    """Python's http.server as a command: startup until it answers, then 200 requests of load."""
    port = free_port()
    (workdir / "index.html").write_text("<p>fixture</p>\n")
    url = f"http://127.0.0.1:{port}/index.html"
    load = threading.Thread(target=drive_load, args=(url, 200), daemon=True)
    load.start()
    record(
        "http-server",
        "--ready-url",
        url,
        "--duration",
        "8",
        "--",
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        str(workdir),
        str(port),
    )


def drive_load(url: str, requests: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    for _ in range(requests):
        urllib.request.urlopen(url, timeout=5).read()


def mini_nim(workdir: Path) -> None:
    """The demo's recording: the mini-NIM in runc, startup until ready, 400 requests of load."""
    from demo import DEFAULT_CAPABILITIES, record_mininim  # noqa: PLC0415 (scripts/demo.py)

    from tracer.network.netns import network_namespace  # noqa: PLC0415

    with network_namespace() as netns_path:
        bundle = mininim_bundle(workdir / "bundle", netns_path=netns_path, capabilities=DEFAULT_CAPABILITIES)
        record_mininim(workdir, bundle, 400, 8, trace=FIXTURES / "mini-nim.trace.json")


RECIPES = {
    "python-chown": python_chown,
    "shell-nonroot": shell_nonroot,
    "http-server": http_server,
    "mini-nim": mini_nim,
}


def main(names: list[str]) -> int:
    for name in names or RECIPES:
        if name not in RECIPES:
            print(f"unknown fixture {name!r}; known: {', '.join(RECIPES)}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix=f"fixture-{name}-") as workdir:
            RECIPES[name](Path(workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
