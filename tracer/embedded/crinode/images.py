"""Container images made from this machine's files, as OCI image archives that
`ctr -n k8s.io images import` reads: nothing is downloaded.

- `pause_image`: the pod sandbox image, one static binary compiled from `pause.c` with gcc;
- `mininim_image`: the mini-NIM's server and model on a rootfs that holds only mountpoints,
  merged-/usr links (`lib64 -> usr/lib64`, ...) and a small /etc (tracer/embedded/bundle.py's rootfs).
  Python and numpy are not in it: a container of it needs the host's /usr bind-mounted
  read-only (`HOST_USR_MOUNT`), which CreateContainer's `mounts` declares.

Archives are reproducible: one layer, uncompressed, every entry owned by root with time 0,
so the same host files give the same digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tracer.embedded.bundle import DEFAULT_PATH, MININIM_DIR, MININIM_MODEL_DIR, MININIM_SERVER, make_rootfs
from tracer.embedded.mininim import SERVER_PATH
from tracer.embedded.mininim.model import write_model
from tracer.errors import InputError

PAUSE_SOURCE = Path(__file__).with_name("pause.c")
IMAGE_REPOSITORY = "localhost/seccomp-tracer"
PAUSE_IMAGE = f"{IMAGE_REPOSITORY}/pause:3.9"
MININIM_IMAGE = f"{IMAGE_REPOSITORY}/mininim:latest"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name"
OCI_REF_ANNOTATION = "org.opencontainers.image.ref.name"
NOBODY = "65535:65535"  # the user Kubernetes' pause image runs as
MININIM_USER = "1000:1000"
HOST_USR_MOUNT = ("/usr", "/usr")  # (host path, container path), read-only


@dataclass(frozen=True)
class Image:
    """An image archive and the names containerd will know it by."""

    name: str  # repository:tag, e.g. localhost/seccomp-tracer/pause:3.9
    archive: Path
    manifest_digest: str  # sha256:..., what a repo digest (name@digest) names
    config_digest: str  # sha256:..., the image id CRI reports

    @property
    def repo_digest(self) -> str:
        return f"{self.name.rpartition(':')[0]}@{self.manifest_digest}"


def pause_image(directory: Path, name: str = PAUSE_IMAGE) -> Image:
    """The sandbox image: /pause, statically linked, run as 65535."""
    binary = compile_pause(directory / "pause")
    layer = tar_layer({"pause": binary})
    config = image_config(entrypoint=["/pause"], user=NOBODY)
    return write_oci_archive(directory / "pause.tar", name, layer, config)


def mininim_image(directory: Path, name: str = MININIM_IMAGE, port: int = 8000) -> Image:
    """The mini-NIM as an image: server and model inside, Python from the host's /usr."""
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        rootfs = Path(scratch) / "rootfs"
        make_rootfs(rootfs, uid=1000, gid=1000, binds=[], tmpfs=["/tmp"])
        nim = rootfs / MININIM_DIR.lstrip("/")
        write_model(rootfs / MININIM_MODEL_DIR.lstrip("/"))
        shutil.copyfile(SERVER_PATH, nim / "server.py")
        layer = tar_layer(rootfs)
    env = {
        "NIM_SERVER_HOST": "127.0.0.1",
        "NIM_SERVER_PORT": str(port),
        "NIM_MODEL_DIR": MININIM_MODEL_DIR,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    config = image_config(
        entrypoint=["/usr/bin/python3", "-u", MININIM_SERVER], user=MININIM_USER, env=env, stop_signal="SIGTERM"
    )
    return write_oci_archive(directory / "mininim.tar", name, layer, config)


def compile_pause(output: Path) -> Path:
    if shutil.which("gcc") is None:
        raise InputError(PAUSE_SOURCE, "gcc is needed to build the pause image")
    done = subprocess.run(
        ["gcc", "-static", "-Os", "-s", "-o", str(output), str(PAUSE_SOURCE)], capture_output=True, text=True
    )
    if done.returncode:
        raise InputError(PAUSE_SOURCE, f"gcc -static failed: {done.stderr.strip()[-500:]}")
    return output


def tar_layer(source: Path | dict[str, Path]) -> bytes:
    """An uncompressed layer of a directory's tree, or of {name in the image: host file}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        if isinstance(source, dict):
            for name, path in sorted(source.items()):
                layer.add(path, arcname=name, filter=owned_by_root)
        else:
            for child in sorted(source.iterdir()):  # entries named without a leading "./"
                layer.add(child, arcname=child.name, filter=owned_by_root)
    return buffer.getvalue()


def owned_by_root(entry: tarfile.TarInfo) -> tarfile.TarInfo:
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    entry.mtime = 0
    return entry


def image_config(
    *, entrypoint: list[str], user: str, env: dict[str, str] | None = None, stop_signal: str | None = None
) -> dict:
    """The OCI image config, less rootfs (write_oci_archive adds it)."""
    config = {
        "Entrypoint": entrypoint,
        "User": user,
        "WorkingDir": "/",
        "Env": [DEFAULT_PATH, *(f"{key}={value}" for key, value in (env or {}).items())],
    }
    if stop_signal:
        config["StopSignal"] = stop_signal
    return {"architecture": host_architecture(), "os": "linux", "config": config}


def host_architecture() -> str:
    """The machine as OCI names it (GOARCH): the image holds this machine's binaries."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def write_oci_archive(path: Path, name: str, layer: bytes, config: dict) -> Image:
    """An OCI image layout (oci-layout, index.json, blobs/sha256/...) in a tar archive."""
    blobs: dict[str, bytes] = {}

    def blob(media_type: str, data: bytes) -> dict:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    layer_descriptor = blob(OCI_LAYER, layer)
    config = {**config, "rootfs": {"type": "layers", "diff_ids": [layer_descriptor["digest"]]}}
    config_descriptor = blob(OCI_CONFIG, canonical_json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_descriptor,
        "layers": [layer_descriptor],
    }
    manifest_descriptor = blob(OCI_MANIFEST, canonical_json(manifest))
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                **manifest_descriptor,
                "annotations": {CONTAINERD_NAME_ANNOTATION: name, OCI_REF_ANNOTATION: name.rpartition(":")[2]},
            }
        ],
    }
    files = {"oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}), "index.json": canonical_json(index)}
    files |= {f"blobs/sha256/{digest.removeprefix('sha256:')}": data for digest, data in blobs.items()}
    write_tar(path, files)
    return Image(name, path, manifest_descriptor["digest"], config_descriptor["digest"])


def canonical_json(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def write_tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for directory in ("blobs", "blobs/sha256"):
            archive.addfile(directory_entry(directory))
        for name, data in sorted(files.items()):
            entry = owned_by_root(tarfile.TarInfo(name))
            entry.size, entry.mode = len(data), 0o644
            archive.addfile(entry, io.BytesIO(data))


def directory_entry(name: str) -> tarfile.TarInfo:
    entry = owned_by_root(tarfile.TarInfo(name))
    entry.type, entry.mode = tarfile.DIRTYPE, 0o755
    return entry
