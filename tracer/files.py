"""Reading and writing the tool's files: every output is written atomically, every JSON input
is read through one function that turns any failure into one line naming the file.

A crash or a bad input never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import tempfile
from pathlib import Path

import orjson

from tracer.errors import InputError, MachineError, TracerError

# Where the path itself is wrong (the user's choice), as opposed to the disk failing us.
PATH_ERRNOS = {errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}
AT_FDCWD, RENAME_EXCHANGE = -100, 2


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` via a temporary file in the same directory and rename.

    A failure is one error naming `path`: InputError when the path cannot be a file (a
    directory, under a regular file), MachineError when the disk refuses (full, read-only)."""
    try:
        _atomic_write_bytes(Path(path), data, mode)
    except OSError as err:
        raise output_error(path, err) from None


def output_error(path: str | os.PathLike, err: OSError, unchanged: str = "") -> TracerError:
    """The one-line error for an output that could not be written; UNCHANGED says what was kept."""
    if Path(path).is_dir() and not unchanged:
        return InputError(path, "is a directory, expected a file to write")
    blocking = first_non_directory(Path(path).parent)
    if blocking is not None:
        return InputError(path, f"cannot be created: {blocking} is not a directory")
    kind = InputError if err.errno in PATH_ERRNOS else MachineError
    return kind(path, f"cannot write: {err.strerror or err}{unchanged}")


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


@contextlib.contextmanager
def opened_directory(path: str | os.PathLike):
    """A descriptor of the directory at PATH as it is now: files read through it come from
    this one directory even if `replace_directory` swaps another in meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise InputError(path, "no such directory") from None
    except OSError as err:
        raise InputError(path, f"cannot open: {err.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def replace_directory(target: str | os.PathLike, files: dict[str, bytes], mode: int = 0o644) -> None:
    """Write a directory of files as a unit: readers see the old directory or the new one,
    never a mix, and a failure (a full file system) leaves the old one as it was.

    The files are written into a new directory beside TARGET, which then takes TARGET's place
    in one rename (the old one is renamed aside first, then removed). A reader that opens the
    directory once and reads its files through it (`opened_directory`) gets one generation. Entries of the old
    directory that are not among FILES (a README, derived output) are carried over. An
    existing non-empty directory holding none of FILES is not replaced: it is not one this
    writer made.
    """
    target = Path(target)
    existed = _replaceable_directory(target, files)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    except OSError as err:
        raise _write_error(target, err, existed) from None
    try:
        for name, data in files.items():
            _write_synced(staging / name, data, mode)
        if existed:
            _carry_over(target, staging, skip=set(files))
        os.chmod(staging, 0o755)
        _fsync_path(staging)
        _put_in_place(staging, target, existed)
        _fsync_path(target.parent)
    except OSError as err:
        raise _write_error(target, err, existed) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the old directory after a swap, or what a failure left


def _replaceable_directory(target: Path, files: dict[str, bytes]) -> bool:
    """Whether TARGET exists (as a directory this writer may replace)."""
    if not target.exists():
        return False
    if not target.is_dir():
        raise InputError(target, "exists and is not a directory")
    present = {entry.name for entry in target.iterdir()}
    if present and not present & set(files):
        raise InputError(target, f"is a directory holding none of {', '.join(files)}: not replacing it")
    return True


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)


def _carry_over(old: Path, new: Path, skip: set[str]) -> None:
    """Hard links (copies where links fail) of the old directory's other entries."""
    for entry in old.iterdir():
        if entry.name in skip:
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), new / entry.name)
        elif entry.is_dir():
            shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, new / entry.name)


def _link_or_copy(source, destination) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _put_in_place(staging: Path, target: Path, existed: bool) -> None:
    """Rename STAGING to TARGET; an existing TARGET ends up at STAGING (removed by the caller)."""
    if not existed:
        os.rename(staging, target)
    elif not _exchange(staging, target):
        # No RENAME_EXCHANGE on this system: rename the old one aside, the new one in, and
        # put the old one where STAGING was for the caller to remove.
        aside = staging.with_name(staging.name + ".old")
        os.rename(target, aside)
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(aside, target)
            raise
        os.rename(aside, staging)


@functools.cache
def _renameat2():
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (renameat2 RENAME_EXCHANGE); False where the C
    library or the file system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _write_error(target: Path, err: OSError, existed: bool) -> TracerError:
    return output_error(target, err, "; the old directory is unchanged" if existed else "")


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode(), mode)


def atomic_write_json(path: str | os.PathLike, obj, mode: int = 0o644) -> None:
    atomic_write_bytes(path, to_json(obj), mode)


def to_json(obj) -> bytes:
    """Stable, human-diffable JSON: indented, sorted keys, trailing newline."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def read_json(
    path: str | os.PathLike, what: str = "a JSON file", max_bytes: int | None = None, dir_fd: int | None = None
):
    """The JSON document in PATH, or InputError naming the file and what is wrong with it.
    With `max_bytes`, a larger file is refused before it is read (memory stays bounded).
    With `dir_fd`, PATH's name is opened in that directory (see `opened_directory`)."""
    source = Path(path)
    opener = None if dir_fd is None else (lambda _path, flags: os.open(source.name, flags, dir_fd=dir_fd))
    try:
        with open(source, "rb", opener=opener) as handle:
            size = os.fstat(handle.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise InputError(
                    source, f"is {size / 2**20:.1f} MiB, more than the {max_bytes / 2**20:.0f} MiB {what} can be"
                )
            data = handle.read()
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
