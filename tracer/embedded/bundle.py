"""Build OCI runtime bundles (config.json + rootfs/) without downloading an image.

The rootfs borrows the host's /usr through a read-only bind mount (Debian 12 is
merged-/usr, so bin, lib, lib64 and sbin are symlinks into it) and gets its own small
/etc with a uid 1000 user. config.json follows what `runc spec` writes, with the process
run as that user on a read-only root and scratch space on tmpfs.

`mininim_bundle` builds the default traced workload: the mini-NIM server and its model.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from tracer.embedded.mininim import SERVER_PATH
from tracer.embedded.mininim.model import write_model
from tracer.errors import InputError
from tracer.oci import STOP_SIGNAL_ANNOTATION, write_config

OCI_VERSION = "1.0.2-dev"
# What `runc spec` grants; pass capabilities=[] for none.
DEFAULT_CAPABILITIES = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_ETC = Path("/etc")
MERGED_USR_LINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
USER_NAME = "nim"
MININIM_DIR = "/opt/nim"
MININIM_MODEL_DIR = f"{MININIM_DIR}/model"
MININIM_SERVER = f"{MININIM_DIR}/server.py"


class Bind(NamedTuple):
    """A read-only bind mount of host `source` at container `destination`."""

    source: str | Path
    destination: str


def make_bundle(
    directory: str | Path,
    args: Sequence[str],
    *,
    uid: int = 1000,
    gid: int = 1000,
    readonly_root: bool = True,
    env: Mapping[str, str] | None = None,
    mounts: Sequence[Bind | tuple[str | Path, str]] = (),
    tmpfs: Sequence[str] = ("/tmp",),
    cgroups_path: str | None = None,
    netns_path: str | Path | None = None,
    no_new_privileges: bool = True,
    capabilities: Sequence[str] | None = None,
    seccomp: dict | None = None,
    hostname: str = "tracer",
    cwd: str = "/",
    stop_signal: str | None = None,
) -> Path:
    """Write an OCI bundle for `args` into `directory`; return the bundle path.

    mounts: extra read-only binds (source, destination). tmpfs: writable scratch
    mountpoints. netns_path: join that network namespace instead of creating one.
    capabilities: None gives runc's defaults. seccomp: an OCI `linux.seccomp` object.
    """
    bundle = Path(directory).resolve()
    binds = [Bind(*mount) for mount in mounts]
    check_inputs(args, binds, tmpfs, netns_path)
    make_rootfs(bundle / "rootfs", uid, gid, binds, tmpfs)
    config = {
        "ociVersion": OCI_VERSION,
        "process": process_spec(args, uid, gid, env or {}, cwd, no_new_privileges, capabilities),
        "root": {"path": "rootfs", "readonly": readonly_root},
        "hostname": hostname,
        "mounts": standard_mounts() + [bind_mount(b) for b in binds] + [tmpfs_mount(t) for t in tmpfs],
        "linux": linux_spec(cgroups_path, netns_path, seccomp),
    }
    if stop_signal:
        config["annotations"] = {STOP_SIGNAL_ANNOTATION: stop_signal}
    write_config(bundle, config)
    return bundle


def mininim_bundle(
    directory: str | Path,
    *,
    port: int = 8000,
    netns_path: str | Path | None = None,
    host: str = "127.0.0.1",
    **bundle_options,
) -> Path:
    """Bundle the mini-NIM: model files in `directory`/model, the server copied alongside.

    Runs `/usr/bin/python3 -u /opt/nim/server.py` as uid 1000 on a read-only root, the
    model and server bound read-only, scratch on tmpfs /tmp. `bundle_options` go to
    make_bundle (cgroups_path, seccomp, capabilities, ...).
    """
    bundle = Path(directory).resolve()
    model_dir = write_model(bundle / "model")
    server = bundle / "server.py"
    shutil.copyfile(SERVER_PATH, server)
    server.chmod(0o644)
    env = {
        "NIM_SERVER_HOST": host,
        "NIM_SERVER_PORT": str(port),
        "NIM_MODEL_DIR": MININIM_MODEL_DIR,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return make_bundle(
        bundle,
        ["/usr/bin/python3", "-u", MININIM_SERVER],
        env=env | dict(bundle_options.pop("env", {})),
        mounts=[Bind(model_dir, MININIM_MODEL_DIR), Bind(server, MININIM_SERVER)],
        netns_path=netns_path,
        hostname=bundle_options.pop("hostname", "mininim"),
        stop_signal=bundle_options.pop("stop_signal", "SIGTERM"),
        **bundle_options,
    )


def check_inputs(args: Sequence[str], binds: list[Bind], tmpfs: Sequence[str], netns_path: str | Path | None) -> None:
    if not args:
        raise InputError(None, "container command is empty")
    for bind in binds:
        if not Path(bind.source).exists():
            raise InputError(bind.source, "bind mount source does not exist")
    for destination in [b.destination for b in binds] + list(tmpfs):
        if not str(destination).startswith("/"):
            raise InputError(None, f"mount destination {destination!r} is not an absolute path")
    if netns_path is not None and not Path(netns_path).exists():
        raise InputError(netns_path, "network namespace does not exist")


def make_rootfs(rootfs: Path, uid: int, gid: int, binds: list[Bind], tmpfs: Sequence[str]) -> None:
    """Mountpoints, merged-/usr symlinks and a minimal /etc; /usr itself is mounted."""
    for name in ("usr", "proc", "dev", "sys", "etc", "run"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    rootfs.chmod(0o755)
    for destination in tmpfs:
        # runc gives a tmpfs the mode of its mountpoint, ignoring the mode= option.
        scratch = rootfs / destination.lstrip("/")
        scratch.mkdir(parents=True, exist_ok=True)
        scratch.chmod(0o1777)
    for name, target in MERGED_USR_LINKS.items():
        link = rootfs / name
        if not link.is_symlink():
            link.symlink_to(target)
    for bind in binds:
        make_mountpoint(rootfs / bind.destination.lstrip("/"), Path(bind.source).is_dir())
    write_etc(rootfs / "etc", uid, gid)


def make_mountpoint(path: Path, is_dir: bool) -> None:
    if is_dir:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)


def write_etc(etc: Path, uid: int, gid: int) -> None:
    copy_dynamic_linker_config(etc)
    user = [] if uid == 0 else [f"{USER_NAME}:x:{uid}:{gid}:{USER_NAME}:/tmp:/usr/sbin/nologin"]
    group = [] if gid == 0 else [f"{USER_NAME}:x:{gid}:"]
    files = {
        "passwd": ["root:x:0:0:root:/root:/usr/sbin/nologin", *user],
        "group": ["root:x:0:", *group],
        "hosts": ["127.0.0.1 localhost", "::1 localhost"],
    }
    for name, lines in files.items():
        (etc / name).write_text("\n".join(lines) + "\n")
        (etc / name).chmod(0o644)


def copy_dynamic_linker_config(etc: Path) -> None:
    """The host's ld.so.cache and /etc/alternatives links, which the host's /usr needs.

    Debian resolves some libraries through them: numpy's libblas.so.3 is a link to
    /etc/alternatives/libblas.so.3-<arch> that ld.so finds only via the cache.
    """
    shutil.copy2(HOST_ETC / "ld.so.cache", etc / "ld.so.cache")
    alternatives = HOST_ETC / "alternatives"
    if alternatives.is_dir():
        shutil.rmtree(etc / "alternatives", ignore_errors=True)
        shutil.copytree(alternatives, etc / "alternatives", symlinks=True)


def process_spec(
    args: Sequence[str],
    uid: int,
    gid: int,
    env: Mapping[str, str],
    cwd: str,
    no_new_privileges: bool,
    capabilities: Sequence[str] | None,
) -> dict:
    caps = list(DEFAULT_CAPABILITIES if capabilities is None else capabilities)
    home = "/root" if uid == 0 else "/tmp"
    return {
        "terminal": False,
        "user": {"uid": uid, "gid": gid},
        "args": list(args),
        "env": [DEFAULT_PATH, f"HOME={home}", *(f"{k}={v}" for k, v in env.items())],
        "cwd": cwd,
        "capabilities": {kind: caps for kind in ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": no_new_privileges,
    }


def standard_mounts() -> list[dict]:
    """The mounts `runc spec` writes, plus the host's /usr read-only."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
        {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro", "nosuid", "nodev"]},
    ]


def bind_mount(bind: Bind) -> dict:
    return {
        "destination": bind.destination,
        "type": "bind",
        "source": str(Path(bind.source).resolve()),
        "options": ["rbind", "ro", "nosuid", "nodev"],
    }


def tmpfs_mount(destination: str) -> dict:
    return {
        "destination": destination,
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777", "size=65536k"],
    }


def linux_spec(cgroups_path: str | None, netns_path: str | Path | None, seccomp: dict | None) -> dict:
    network = {"type": "network", **({"path": str(netns_path)} if netns_path else {})}
    linux = {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, network, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    }
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return linux
