"""Reading and writing the tool's files: every output is written atomically, every JSON input
is read through one function that turns any failure into one line naming the file.

A crash or a bad input never leaves a half-written output behind.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import orjson

from tracer.errors import InputError, MachineError, TracerError

# Where the path itself is wrong (the user's choice), as opposed to the disk failing us.
PATH_ERRNOS = {errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` via a temporary file in the same directory and rename.

    A failure is one error naming `path`: InputError when the path cannot be a file (a
    directory, under a regular file), MachineError when the disk refuses (full, read-only)."""
    try:
        _atomic_write_bytes(Path(path), data, mode)
    except OSError as err:
        raise output_error(path, err) from None


def output_error(path: str | os.PathLike, err: OSError) -> TracerError:
    """The one-line error for an output file that could not be written."""
    if Path(path).is_dir():
        return InputError(path, "is a directory, expected a file to write")
    blocking = first_non_directory(Path(path).parent)
    if blocking is not None:
        return InputError(path, f"cannot be created: {blocking} is not a directory")
    if err.errno in PATH_ERRNOS:
        return InputError(path, f"cannot write: {err.strerror}")
    return MachineError(path, f"cannot write: {err.strerror}")


def first_non_directory(directory: Path) -> Path | None:
    """The first existing component of `directory` that is not a directory, if any."""
    for parent in reversed([directory, *directory.parents]):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def check_output_file(path: str | os.PathLike) -> None:
    """Fail now, before anything is started, when `path` could never be written: a directory,
    under a regular file, or in a directory that refuses new files (read-only, full).
    Creates nothing: missing parent directories are made by the first write."""
    target = Path(path)
    if target.is_dir():
        raise InputError(path, "is a directory, expected a file to write")
    nearest = next(parent for parent in target.parents if parent.exists())
    try:
        with tempfile.NamedTemporaryFile(dir=nearest, prefix=f".{target.name}.", suffix=".probe"):
            pass
    except OSError as err:
        raise output_error(path, err) from None


def _atomic_write_bytes(target: Path, data: bytes, mode: int) -> None:
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
