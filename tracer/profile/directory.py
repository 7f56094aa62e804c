"""Load a profile directory written by `tracer generate`.

DIR/seccomp.json       OCI runtime-spec LinuxSeccomp object
DIR/capabilities.json  {"add": [...], "drop": ["ALL"], "evidence": {...}}
DIR/recording.json     optional: how the recording ran (read-only root, writes, uid)

Every problem is an `InputError(path, problem)`: one line naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tracer.errors import InputError
from tracer.files import opened_directory, read_json
from tracer.profile.validate import check_capabilities, check_recording, check_seccomp

READ_ATTEMPTS = 3
# Far beyond any profile (Docker's default is 30 KiB); a larger file is refused unread.
MAX_PROFILE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class ProfileDir:
    path: Path
    seccomp: dict
    capabilities: dict
    recording: dict | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def capabilities_add(self) -> list[str]:
        """Recorded capabilities as the kernel names them: CAP_CHOWN, ..."""
        return list(self.capabilities["add"])

    @property
    def rootfs_readonly(self) -> bool | None:
        return (self.recording or {}).get("rootfs_readonly")

    @property
    def writes_outside_volumes(self) -> bool | None:
        return (self.recording or {}).get("writes_outside_volumes")

    @property
    def run_as_user(self) -> int | None:
        return (self.recording or {}).get("run_as_user")

    @property
    def recorded_container(self) -> str | None:
        """The container name every recording behind the profile was made from, if they say one."""
        names = {container_name((trace or {}).get("target")) for trace in (self.recording or {}).get("traces") or []}
        return names.pop() if len(names) == 1 and None not in names else None


def container_name(target) -> str | None:
    """A trace target's container name: {"container": {"name": ...}} (v2) or {"container": "..."} (v1)."""
    container = (target or {}).get("container") if isinstance(target, dict) else None
    if isinstance(container, dict):
        container = container.get("name")
    return container if isinstance(container, str) and container else None


def load_profile_dir(path: str | Path) -> ProfileDir:
    """The three files as one generation, even while `generate` replaces the directory: they
    are read through one descriptor of it, and read again if it was replaced (and the old one
    removed) while they were being read."""
    directory = Path(path)
    if not directory.is_dir():
        raise InputError(directory, "profile directory not found")
    for attempt in range(READ_ATTEMPTS):
        with opened_directory(directory) as fd:
            try:
                return _load_generation(directory, fd)
            except InputError:
                if attempt + 1 == READ_ATTEMPTS or not _replaced(directory, fd):
                    raise
    raise AssertionError("unreachable")


def _replaced(directory: Path, fd: int) -> bool:
    try:
        now = os.stat(directory)
    except FileNotFoundError:
        return True
    then = os.fstat(fd)
    return (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino)


def _load_generation(directory: Path, fd: int) -> ProfileDir:
    seccomp = load_seccomp(directory / "seccomp.json", dir_fd=fd)
    capabilities = read_json(directory / "capabilities.json", "a capabilities.json", MAX_PROFILE_BYTES, fd)
    check_capabilities(directory / "capabilities.json", capabilities)
    recording_file = directory / "recording.json"
    try:
        recording = read_json(recording_file, "a recording.json", MAX_PROFILE_BYTES, fd)
    except InputError as err:
        if err.problem != "no such file":
            raise
        recording = None
    if recording is not None:
        check_recording(recording_file, recording)
    return ProfileDir(directory.resolve(), seccomp, capabilities, recording)


def load_seccomp(file: str | Path, dir_fd: int | None = None) -> dict:
    """A seccomp.json on its own (an OCI LinuxSeccomp), checked as runc would take it."""
    seccomp = read_json(file, "a seccomp profile", MAX_PROFILE_BYTES, dir_fd)
    check_seccomp(file, seccomp)
    return seccomp
