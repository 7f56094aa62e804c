"""An OCI image archive read back as a runtime reads it (the CRI node's images)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from tracer.embedded.crinode import images


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
