"""Input errors and atomic file writing shared by every command.

An `InputError` carries one line that names the file and the problem; the CLI prints it
and exits 2. Every file the tool writes goes through `atomic_write_*`, so a crash or a
bad input never leaves a half-written output behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import orjson


class InputError(Exception):
    """Bad input from the user: exit code 2, one clear line."""

    def __init__(self, source: str | os.PathLike | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` via a temporary file in the same directory and rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode(), mode)


def atomic_write_json(path: str | os.PathLike, obj, mode: int = 0o644) -> None:
    atomic_write_bytes(path, to_json(obj), mode)


def to_json(obj) -> bytes:
    """Stable, human-diffable JSON: indented, sorted keys, trailing newline."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
