"""Waiting in a test for something another process does."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout: float,
    what: str = "the condition",
    interval: float = 0.05,
    process: subprocess.Popen | None = None,
) -> T:
    """condition()'s first truthy result; fails the test naming `what` after `timeout` seconds,
    or at once when `process` (one the condition waits on) exits first, with its stderr."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited {process.returncode} first: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(interval)
    return result
