"""Finding a pod's container through CRI and its cgroup v2 directory, on stand-ins: a scratch
directory for the cgroup2 mount, mountinfo files, a socket directory (the real cgroup2 mount and
CRI node: tests/live/test_cri.py).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tracer import cgroups
from tracer.errors import InputError, MachineError
from tracer.kube.cri import cgroup_path
from tracer.kube.cri import client as cri

POD_UID = "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c"
NIM_ID = "3e5f" + "a" * 60

SYSTEMD_BURSTABLE = (
    f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
    f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{NIM_ID}.scope"
)


@pytest.fixture
def socket_dir():
    directory = tempfile.mkdtemp(prefix="cri-", dir="/tmp")  # unix socket paths are short
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def cgroup_tree(tmp_path, monkeypatch) -> Path:
    """A scratch directory standing in for the cgroup2 mount (ids are inode numbers)."""
    monkeypatch.setattr(cgroup_path, "cgroup_v2_root", lambda: tmp_path)
    return tmp_path


def test_no_cgroup_found_names_what_was_tried(cgroup_tree):
    with pytest.raises(InputError, match=r"no cgroup v2 directory found .* \(tried 12 kubelet cgroup layouts"):
        cgroup_path.find_container_cgroup(POD_UID, NIM_ID)


def test_the_oci_cgroups_path_is_tried_before_the_kubelet_layouts(cgroup_tree):
    elsewhere = cgroup_tree / "custom-root" / NIM_ID
    elsewhere.mkdir(parents=True)
    (cgroup_tree / SYSTEMD_BURSTABLE).mkdir(parents=True)

    found = cgroup_path.find_container_cgroup(POD_UID, NIM_ID, cgroups_path=f"/custom-root/{NIM_ID}")

    assert found == elsewhere


def test_unreachable_runtime_is_a_machine_error(socket_dir):
    endpoint = f"unix://{socket_dir}/absent.sock"
    with pytest.raises(MachineError, match="CRI ListContainers failed: UNAVAILABLE") as caught:
        cri.resolve_pod_container("nim", "p", cri_endpoint=endpoint)
    assert caught.value.source == endpoint and caught.value.exit_code == 3


def test_endpoint_choice_flag_then_environment_then_default_sockets(monkeypatch, socket_dir):
    monkeypatch.setenv(cri.CRI_ENDPOINT_ENV, "/run/crio/crio.sock")
    assert cri.cri_endpoint_for("unix:///custom.sock") == "unix:///custom.sock"
    assert cri.cri_endpoint_for() == "unix:///run/crio/crio.sock"

    monkeypatch.delenv(cri.CRI_ENDPOINT_ENV)
    socket = socket_dir / "containerd.sock"
    socket.touch()
    monkeypatch.setattr(cri, "DEFAULT_CRI_ENDPOINTS", ("unix:///nonexistent.sock", f"unix://{socket}"))
    assert cri.cri_endpoint_for() == f"unix://{socket}"
    socket.unlink()
    with pytest.raises(InputError, match="no CRI socket found"):
        cri.cri_endpoint_for()


# --- cgroup v2 layouts ------------------------------------------------------------------


def test_cgroup2_mount_is_read_from_mountinfo(tmp_path):
    hybrid = tmp_path / "hybrid"
    hybrid.write_text(
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    unified = tmp_path / "unified"
    unified.write_text("30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n")
    none = tmp_path / "none"
    none.write_text("22 1 0:21 / /proc rw - proc proc rw\n")

    assert cgroups.cgroup_v2_root(hybrid) == Path("/sys/fs/cgroup/unified")
    assert cgroups.cgroup_v2_root(unified) == Path("/sys/fs/cgroup")
    with pytest.raises(InputError, match="no cgroup2 file system is mounted"):
        cgroups.cgroup_v2_root(none)
    assert (cgroups.cgroup_v2_root() / "cgroup.procs").exists()  # this machine's, for real


@pytest.mark.parametrize(
    "cgroups_path, relative",
    [
        (f"kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice:cri-containerd:{NIM_ID}", SYSTEMD_BURSTABLE),
        (
            f"kubepods-pod{POD_UID.replace('-', '_')}.slice:crio:{NIM_ID}",
            f"kubepods.slice/kubepods-pod{POD_UID.replace('-', '_')}.slice/crio-{NIM_ID}.scope",
        ),
        (f"/kubepods/burstable/pod{POD_UID}/{NIM_ID}", f"kubepods/burstable/pod{POD_UID}/{NIM_ID}"),
    ],
)
def test_oci_cgroups_path_of_either_driver(cgroups_path, relative):
    assert cgroup_path.relative_from_cgroups_path(cgroups_path) == relative
