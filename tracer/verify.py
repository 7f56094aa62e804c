"""Enforce and verify: put a profile into an OCI bundle, run the workload under it, and count
what the kernel refused.

A refusal is seen where it happens: a syscall the filter refuses still passes the
raw_syscalls:sys_exit tracepoint with its number and the filter's errno, and a denied
capability check passes capability:cap_capable. The same recorder that made the trace
watches the verification run, so the report uses the trace format too.
"""

from __future__ import annotations

import json
from pathlib import Path

from tracer.errors import InputError, atomic_write_json


def load_profile(profile_dir: Path) -> tuple[dict, dict]:
    """(seccomp profile, capabilities document) from a directory written by `generate`."""
    if not profile_dir.is_dir():
        raise InputError(profile_dir, "not a profile directory (expected seccomp.json and capabilities.json)")
    documents = []
    for name in ("seccomp.json", "capabilities.json"):
        path = profile_dir / name
        try:
            documents.append(json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputError(path, "missing") from None
        except ValueError as err:
            raise InputError(path, f"not valid JSON: {err}") from None
    seccomp, capabilities = documents
    if not isinstance(seccomp, dict) or "defaultAction" not in seccomp:
        raise InputError(profile_dir / "seccomp.json", "not an OCI LinuxSeccomp object (no defaultAction)")
    if not isinstance(capabilities, dict) or not isinstance(capabilities.get("add"), list):
        raise InputError(profile_dir / "capabilities.json", "has no \"add\" list")
    return seccomp, capabilities


def apply_profile(profile_dir: Path, bundle: Path) -> dict:
    """Write the profile into BUNDLE/config.json, keeping everything else; return the config."""
    seccomp, capabilities = load_profile(profile_dir)
    config_path = bundle / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise InputError(bundle, "not an OCI bundle (no config.json)") from None
    except ValueError as err:
        raise InputError(config_path, f"not valid JSON: {err}") from None
    caps = sorted(capabilities["add"])
    process = config.setdefault("process", {})
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    process["noNewPrivileges"] = True
    config.setdefault("linux", {})["seccomp"] = seccomp
    atomic_write_json(config_path, config)
    return config
