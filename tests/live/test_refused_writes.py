"""A write the machine refuses, on a tmpfs of the test's own (mounted as root): generate on a full
or read-only file system leaves the old profile, and any command's refused write is one line, exit 3.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.paths import FIXTURES
from tracer.cli import main

OLD_TRACE = FIXTURES / "shell-nonroot.trace.json"
NEW_TRACE = FIXTURES / "mini-nim.trace.json"
MERGED_TRACE = str(FIXTURES / "python-chown.trace.json")


def snapshot_of(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def small_tmpfs(live, tmp_path):
    """A 1 MiB tmpfs of our own, unmounted afterwards."""
    mountpoint = tmp_path / "fs"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tracer-test", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(filesystem: Path) -> None:
    with open(filesystem / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def test_full_file_system_leaves_the_old_profile(small_tmpfs, capsys):
    out = small_tmpfs / "profile"
    assert main(["generate", str(OLD_TRACE), "--out", str(out)]) == 0
    before = snapshot_of(out)
    fill(small_tmpfs)
    assert main(["generate", str(NEW_TRACE), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "No space left on device" in err and "unchanged" in err
    assert snapshot_of(out) == before
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler", "profile"]  # no staging left behind


def test_read_only_file_system_leaves_the_old_profile(small_tmpfs, capsys):
    out = small_tmpfs / "profile"
    assert main(["generate", str(OLD_TRACE), "--out", str(out)]) == 0
    before = snapshot_of(out)
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    assert main(["generate", str(NEW_TRACE), "--out", str(out)]) == 3  # the machine refused: a read-only file system
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err
    assert snapshot_of(out) == before


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_read_only_output_is_one_line_exit_3(live, tmp_path, capsys):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(readonly)], check=True)
    try:
        assert main(["merge", MERGED_TRACE, MERGED_TRACE, "--out", str(readonly / "merged.json")]) == 3
    finally:
        subprocess.run(["umount", "-l", str(readonly)], check=True)
    assert error_lines(capsys.readouterr().err) == [
        f"error: {readonly}/merged.json: cannot write: Read-only file system"
    ]
