"""generate writes the profile directory as a unit: readers see the old profile or the new one,
never a mix (a full or read-only file system leaves the old one: tests/live/test_refused_writes.py)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from support.paths import FIXTURES
from tracer.cli import main
from tracer.files import _exchange, replace_directory
from tracer.profile import directory as profile_directory

OLD_TRACE = FIXTURES / "shell-nonroot.trace.json"
NEW_TRACE = FIXTURES / "mini-nim.trace.json"
PROFILE_FILES = ("seccomp.json", "capabilities.json", "recording.json")


def test_replacing_carries_other_files_over_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "profile"
    assert main(["generate", str(OLD_TRACE), "--out", str(out)]) == 0
    (out / "README.md").write_text("how this profile was made\n")
    (out / "k8s").mkdir()
    (out / "k8s" / "nim.json").write_text("{}")
    old_seccomp = (out / "seccomp.json").read_bytes()
    assert main(["generate", str(NEW_TRACE), "--out", str(out)]) == 0
    assert (out / "seccomp.json").read_bytes() != old_seccomp
    assert (out / "README.md").read_text() == "how this profile was made\n" and (out / "k8s" / "nim.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["profile"]


def test_a_directory_generate_did_not_write_is_not_replaced(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    assert main(["generate", str(OLD_TRACE), "--out", str(home)]) == 2
    assert "holding none of seccomp.json" in capsys.readouterr().err
    assert [p.name for p in home.iterdir()] == ["notes.txt"]


def read_at(directory_fd: int, name: str) -> bytes | None:
    """The file's bytes, or None when its directory was removed meanwhile (an old generation)."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=directory_fd)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, 16)
    finally:
        os.close(fd)


def exchange_works_in(directory: Path) -> bool:
    (directory / "x").mkdir()
    (directory / "y").mkdir()
    return _exchange(directory / "x", directory / "y")


def test_readers_never_see_a_mix(tmp_path):
    """While profiles are written over each other, every read of the three files finds them
    from one generation (and, with RENAME_EXCHANGE, finds the directory at all times)."""
    out = tmp_path / "p"
    replace_directory(out, {name: b"0" for name in PROFILE_FILES})
    stop, mixes, missing, reads = threading.Event(), [], [0], [0]

    def read_continually():
        while not stop.is_set():
            try:
                fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # one directory: one generation
            except FileNotFoundError:
                missing[0] += 1
                continue
            try:
                generations = {read_at(fd, name) for name in PROFILE_FILES} - {None}
            finally:
                os.close(fd)
            reads[0] += 1
            if len(generations) > 1:
                mixes.append(generations)

    reader = threading.Thread(target=read_continually)
    reader.start()
    try:
        for generation in range(1, 200):
            replace_directory(out, {name: str(generation).encode() for name in PROFILE_FILES})
    finally:
        stop.set()
        reader.join()
    assert reads[0] > 100 and not mixes
    assert json.loads((out / "seccomp.json").read_text()) == 199
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if exchange_works_in(scratch):
        assert missing[0] == 0


def test_load_profile_dir_reads_one_generation(tmp_path, monkeypatch):
    """A profile replaced between reading its seccomp.json and its capabilities.json is read
    again, whole."""

    out = tmp_path / "p"
    assert main(["generate", str(OLD_TRACE), "--out", str(out)]) == 0
    old_capabilities = json.loads((out / "capabilities.json").read_text())
    real_check = profile_directory.check_seccomp

    def replace_meanwhile(file, seccomp):
        real_check(file, seccomp)
        if not replaced:
            replaced.append(main(["generate", str(FIXTURES / "python-chown.trace.json"), "--out", str(out)]))

    replaced = []
    monkeypatch.setattr(profile_directory, "check_seccomp", replace_meanwhile)
    loaded = profile_directory.load_profile_dir(out)
    assert replaced == [0]
    new_seccomp, new_capabilities = (
        json.loads((out / name).read_text()) for name in ("seccomp.json", "capabilities.json")
    )
    assert new_capabilities != old_capabilities
    assert (loaded.seccomp, loaded.capabilities) == (
        new_seccomp,
        new_capabilities,
    )  # not the old seccomp.json with the new rest
