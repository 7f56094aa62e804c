"""The CRI node's images that are compiled here (the pause binary, with gcc): reproducible, and a
static pause that waits until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time

from support.live import require_commands
from support.oci_archive import layer_entries, read_oci_archive
from tracer.embedded.crinode import images


def test_images_are_reproducible(live, tmp_path):
    require_commands("gcc")
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()

    assert _digests(images.mininim_image(first)) == _digests(images.mininim_image(second))
    assert _digests(images.pause_image(first)) == _digests(images.pause_image(second))


def _digests(image: images.Image) -> tuple[str, str]:
    return image.manifest_digest, image.config_digest


def test_pause_image_holds_a_static_pause_that_stops_on_sigterm(live, tmp_path):
    require_commands("gcc")
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
