"""The images the CRI node imports (tracer/embedded/crinode/images.py), read back as a runtime reads
them (those compiled with gcc: tests/live/test_cri_images_compiled.py), and the generated CRI
messages against the committed api.proto."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from support.oci_archive import layer_entries, read_oci_archive
from tracer.embedded.crinode import images
from tracer.embedded.mininim import SERVER_PATH
from tracer.kube.cri import client as cri_client
from tracer.kube.cri.runtime.v1 import api_pb2

RUNTIME_V1 = Path(cri_client.__file__).with_name("runtime") / "v1"


def test_mininim_image_is_an_oci_archive_with_a_host_usr_rootfs(tmp_path):
    image = images.mininim_image(tmp_path, port=8123)

    entry, manifest, config, layer = read_oci_archive(image.archive)

    assert entry["annotations"] == {images.CONTAINERD_NAME_ANNOTATION: image.name, images.OCI_REF_ANNOTATION: "latest"}
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


def test_generated_cri_messages_come_from_the_committed_api_proto():
    generated = (RUNTIME_V1 / "api_pb2.py").read_text().splitlines()
    proto_sha256 = hashlib.sha256((RUNTIME_V1 / "api.proto").read_bytes()).hexdigest()

    assert generated[1] == f"# api.proto sha256: {proto_sha256}"

    service = api_pb2.DESCRIPTOR.services_by_name["RuntimeService"]
    assert {"RunPodSandbox", "CreateContainer", "StartContainer", "ContainerStatus"} <= set(service.methods_by_name)
    assert api_pb2.DESCRIPTOR.name == "runtime/v1/api.proto" and api_pb2.DESCRIPTOR.package == "runtime.v1"
