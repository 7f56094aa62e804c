"""Load a profile directory written by `tracer generate`.

DIR/seccomp.json       OCI runtime-spec LinuxSeccomp object
DIR/capabilities.json  {"add": [...], "drop": ["ALL"], "evidence": {...}}
DIR/recording.json     optional: how the recording ran (read-only root, writes, uid)

Every problem is an `InputError(path, problem)`: one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from tracer.errors import InputError


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


def load_profile_dir(path: str | Path) -> ProfileDir:
    directory = Path(path)
    if not directory.is_dir():
        raise InputError(directory, "profile directory not found")
    seccomp = _read_json(directory / "seccomp.json")
    _check_seccomp(directory / "seccomp.json", seccomp)
    capabilities = _read_json(directory / "capabilities.json")
    _check_capabilities(directory / "capabilities.json", capabilities)
    recording_file = directory / "recording.json"
    recording = _read_json(recording_file) if recording_file.exists() else None
    if recording is not None:
        _check_recording(recording_file, recording)
    return ProfileDir(directory.resolve(), seccomp, capabilities, recording)


def read_json_file(path) -> object:
    """Any JSON file the user names; problems are InputErrors naming it."""
    return _read_json(Path(path))


def _read_json(file: Path):
    try:
        return orjson.loads(file.read_bytes())
    except FileNotFoundError:
        raise InputError(file, "file not found") from None
    except IsADirectoryError:
        raise InputError(file, "is a directory, expected a JSON file") from None
    except OSError as err:
        raise InputError(file, f"cannot read: {err.strerror}") from None
    except orjson.JSONDecodeError as err:
        raise InputError(file, f"not valid JSON: {err}") from None


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_seccomp(file: Path, seccomp) -> None:
    if not isinstance(seccomp, dict):
        raise InputError(file, "expected a JSON object (an OCI LinuxSeccomp)")
    if not isinstance(seccomp.get("defaultAction"), str):
        raise InputError(file, "'defaultAction' must be a string such as SCMP_ACT_ERRNO")
    if "defaultErrnoRet" in seccomp and not _is_int(seccomp["defaultErrnoRet"]):
        raise InputError(file, "'defaultErrnoRet' must be an integer")
    if not _is_str_list(seccomp.get("architectures", [])):
        raise InputError(file, "'architectures' must be a list of strings")
    rules = seccomp.get("syscalls")
    if not isinstance(rules, list):
        raise InputError(file, "'syscalls' must be a list of rules")
    for index, rule in enumerate(rules):
        where = f"syscalls[{index}]"
        if not isinstance(rule, dict) or not _is_str_list(rule.get("names")):
            raise InputError(file, f"{where} must have 'names': a list of syscall names")
        if not isinstance(rule.get("action"), str):
            raise InputError(file, f"{where} must have 'action': a string")
        if "errnoRet" in rule and not _is_int(rule["errnoRet"]):
            raise InputError(file, f"{where}.errnoRet must be an integer")
    from tracer.profile.filter import filter_from_oci  # noqa: PLC0415 (checks every rule's args)

    filter_from_oci(seccomp, str(file))


def _check_capabilities(file: Path, capabilities) -> None:
    if not isinstance(capabilities, dict):
        raise InputError(file, "expected a JSON object with 'add' and 'drop'")
    for key in ("add", "drop"):
        if not _is_str_list(capabilities.get(key)):
            raise InputError(file, f"'{key}' must be a list of capability names")
    for name in capabilities["add"]:
        if not name.startswith("CAP_"):
            raise InputError(file, f"'add' holds {name!r}: expected a name like CAP_CHOWN")
    if not isinstance(capabilities.get("evidence", {}), dict):
        raise InputError(file, "'evidence' must be an object keyed by capability")


def _check_recording(file: Path, recording) -> None:
    if not isinstance(recording, dict):
        raise InputError(file, "expected a JSON object")
    for key in ("rootfs_readonly", "writes_outside_volumes"):
        if recording.get(key) not in (True, False, None):
            raise InputError(file, f"'{key}' must be true, false or null")
    uid = recording.get("run_as_user")
    if uid is not None and not (_is_int(uid) and uid >= 0):
        raise InputError(file, "'run_as_user' must be a non-negative integer or null")
