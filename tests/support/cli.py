"""The installed `tracer` command, run as a user runs it."""

from __future__ import annotations

import subprocess

from support.paths import REPO


def tracer_cli(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed CLI as a user would."""
    done = subprocess.run([str(REPO / ".venv/bin/tracer"), *args], capture_output=True, text=True, **kwargs)
    if check and done.returncode not in (0, 1):
        raise AssertionError(f"tracer {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done
