"""Reading and writing the tool's files: every output is written atomically, every JSON input
is read through one function that turns any failure into one line naming the file.

A crash or a bad input never leaves a half-written output behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import orjson

from tracer.errors import InputError

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


def read_json(path: str | os.PathLike, what: str = "a JSON file"):
    """The JSON document in PATH, or InputError naming the file and what is wrong with it."""
    source = Path(path)
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except IsADirectoryError:
        raise InputError(source, f"is a directory, expected {what}") from None
    except OSError as err:
        raise InputError(source, f"cannot read: {err.strerror}") from None
    if not data.strip():
        raise InputError(source, "is empty")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        if err.pos >= len(data.rstrip()) - 1:
            raise InputError(source, f"truncated: JSON ends early at byte {len(data)}") from None
        raise InputError(source, f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
