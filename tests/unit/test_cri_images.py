"""The images the CRI node imports (tracer/embedded/crinode/images.py), read back as a runtime reads
them, and the generated CRI messages against the committed api.proto."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tracer.embedded.crinode import images
from tracer.kube.cri import client as cri_client
from tracer.embedded.mininim import SERVER_PATH

RUNTIME_V1 = Path(cri_client.__file__).with_name("runtime") / "v1"


def needs_gcc() -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")


def read_oci_archive(path: Path) -> tuple[dict, dict, dict, bytes]:
    """index.json's one manifest, its config and its layer, each checked against its digest."""
    with tarfile.open(path) as archive:
        assert json.loads(archive.extractfile("oci-layout").read()) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads(archive.extractfile("index.json").read())

        def blob(descriptor: dict) -> bytes:
            data = archive.extractfile(f"blobs/sha256/{descriptor['digest'].removeprefix('sha256:')}").read()
            assert f"sha256:{hashlib.sha256(data).hexdigest()}" == descriptor["digest"]
            assert len(data) == descriptor["size"]
            return data

        [entry] = index["manifests"]
        manifest = json.loads(blob(entry))
        config = json.loads(blob(manifest["config"]))
        [layer_descriptor] = manifest["layers"]
        layer = blob(layer_descriptor)
    assert manifest["mediaType"] == entry["mediaType"] == images.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == images.OCI_CONFIG and layer_descriptor["mediaType"] == images.OCI_LAYER
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer_descriptor["digest"]]}  # uncompressed
    return entry, manifest, config, layer


def layer_entries(layer: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        return {entry.name: entry for entry in archive.getmembers()}


def test_mininim_image_is_an_oci_archive_with_a_host_usr_rootfs(tmp_path):
    image = images.mininim_image(tmp_path, port=8123)

    entry, manifest, config, layer = read_oci_archive(image.archive)

    assert entry["annotations"] == {images.CONTAINERD_NAME_ANNOTATION: image.name,
                                    images.OCI_REF_ANNOTATION: "latest"}
    assert entry["digest"] == image.manifest_digest and manifest["config"]["digest"] == image.config_digest
    assert image.repo_digest == f"localhost/seccomp-tracer/mininim@{image.manifest_digest}"
    assert config["os"] == "linux" and config["architecture"] == images.host_architecture()
    assert config["config"]["Entrypoint"] == ["/usr/bin/python3", "-u", "/opt/nim/server.py"]
    assert config["config"]["User"] == "1000:1000"
    assert "NIM_SERVER_PORT=8123" in config["config"]["Env"]
    entries = layer_entries(layer)
    links = {name: entries[name].linkname for name in ("bin", "lib", "lib64", "sbin")}
    assert links == {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
    assert all(entries[name].isdir() for name in ("usr", "proc", "dev", "sys", "etc", "run", "opt/nim/model"))
    assert entries["tmp"].mode == 0o1777
    assert "usr/bin" not in entries  # /usr is the host's, mounted: the image has its mountpoint only
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        assert archive.extractfile("opt/nim/server.py").read() == SERVER_PATH.read_bytes()
        assert "nim:x:1000:1000:" in archive.extractfile("etc/passwd").read().decode()
    assert {"opt/nim/model/model.npz", "opt/nim/model/config.json", "etc/ld.so.cache"} <= entries.keys()
    assert {(e.uid, e.gid, e.mtime) for e in entries.values()} == {(0, 0, 0)}


def test_images_are_reproducible(tmp_path):
    needs_gcc()
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()

    assert _digests(images.mininim_image(first)) == _digests(images.mininim_image(second))
    assert _digests(images.pause_image(first)) == _digests(images.pause_image(second))


def _digests(image: images.Image) -> tuple[str, str]:
    return image.manifest_digest, image.config_digest


def test_pause_image_holds_a_static_pause_that_stops_on_sigterm(tmp_path):
    needs_gcc()
    image = images.pause_image(tmp_path)

    _, _, config, layer = read_oci_archive(image.archive)

    assert config["config"]["Entrypoint"] == ["/pause"] and config["config"]["User"] == "65535:65535"
    assert list(layer_entries(layer)) == ["pause"]
    binary = tmp_path / "pause"  # the file that went into the layer
    assert subprocess.run(["ldd", str(binary)], capture_output=True, text=True).returncode != 0  # static
    pause = subprocess.Popen([str(binary)])
    time.sleep(0.2)
    assert pause.poll() is None  # waits
    pause.send_signal(signal.SIGTERM)
    assert pause.wait(5) == 0


def test_generated_cri_messages_come_from_the_committed_api_proto():
    generated = (RUNTIME_V1 / "api_pb2.py").read_text().splitlines()
    proto_sha256 = hashlib.sha256((RUNTIME_V1 / "api.proto").read_bytes()).hexdigest()

    assert generated[1] == f"# api.proto sha256: {proto_sha256}"
    from tracer.kube.cri.runtime.v1 import api_pb2

    service = api_pb2.DESCRIPTOR.services_by_name["RuntimeService"]
    assert {"RunPodSandbox", "CreateContainer", "StartContainer", "ContainerStatus"} <= set(service.methods_by_name)
    assert api_pb2.DESCRIPTOR.name == "runtime/v1/api.proto" and api_pb2.DESCRIPTOR.package == "runtime.v1"
