"""An OCI runtime bundle's `config.json`: read it, write it, and the few facts we take from it.

Field names follow the OCI runtime-spec (`process.user`, `root.readonly`, `linux.seccomp`, ...).
"""

from __future__ import annotations

import signal
from pathlib import Path

from tracer.errors import InputError
from tracer.files import atomic_write_json, read_json

STOP_SIGNAL_ANNOTATION = "org.opencontainers.image.stopSignal"


def config_path(bundle: str | Path) -> Path:
    return Path(bundle) / "config.json"


def check_bundle(bundle: str | Path) -> Path:
    """BUNDLE as an absolute path, if it holds a config.json."""
    path = Path(bundle).resolve()
    if not config_path(path).is_file():
        raise InputError(path, "not an OCI bundle (no config.json)")
    return path


def read_config(bundle: str | Path) -> dict:
    config = read_json(config_path(bundle), "an OCI config.json")
    if not isinstance(config, dict):
        raise InputError(config_path(bundle), "an OCI config must be a JSON object")
    return config


def write_config(bundle: str | Path, config: dict) -> None:
    atomic_write_json(config_path(bundle), config)


def named_netns(config: dict) -> str | None:
    """The named network namespace (ip netns, pyroute2) a container config joins, if any."""
    for namespace in config.get("linux", {}).get("namespaces", []):
        path = namespace.get("path", "")
        if namespace.get("type") == "network" and path.startswith(("/var/run/netns/", "/run/netns/")):
            return Path(path).name
    return None


def stop_signal(bundle: str | Path) -> signal.Signals:
    """The signal that asks this bundle's container to stop (its annotation, else SIGTERM)."""
    annotations = read_config(bundle).get("annotations") or {}
    name = annotations.get(STOP_SIGNAL_ANNOTATION, "SIGTERM")
    try:
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except KeyError:
        raise InputError(config_path(bundle), f"unknown stop signal {name!r}") from None


def process_facts(config: dict) -> dict:
    """What a config says about the recorded process: root fs mode, user, privileges, seccomp."""
    process = config.get("process", {})
    return {
        "rootfs_readonly": bool(config.get("root", {}).get("readonly", False)),
        "user": process.get("user", {}),
        "no_new_privileges": bool(process.get("noNewPrivileges", False)),
        "seccomp_during_recording": bool(config.get("linux", {}).get("seccomp")),
    }


def enforce(config: dict, seccomp: dict, capabilities: list[str]) -> dict:
    """CONFIG with a profile put in force: its seccomp filter, exactly these capabilities
    (bounding, effective, permitted), and no privilege gain through exec."""
    caps = sorted(capabilities)
    process = config.setdefault("process", {})
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    process["noNewPrivileges"] = True
    config.setdefault("linux", {})["seccomp"] = seccomp
    return config
