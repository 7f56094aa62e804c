"""A containerd of our own with its CRI plugin, set up as a kubelet's node runtime.

Everything it keeps is under one directory (root, state, socket, runc's state, CNI config),
so it runs beside any other containerd. The CRI plugin is configured as on a kubeadm node
with the cgroupfs driver: runc v2 shim, `SystemdCgroup = false`, our pause image as
`sandbox_image`, and `restrict_oom_score_adj = true` (the kubelet raises containers'
oom_score_adj; a machine that refuses lowering it below containerd's own needs this).
Its streaming server listens on a free port, not CRI's fixed 10010. Where the CNI plugins
are installed, pods that do not use the host's network get one of their own (tracer.embedded.crinode.cni).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tracer.embedded.crinode import cni
from tracer.embedded.crinode.images import Image
from tracer.errors import InputError
from tracer.kube.cri.client import CriClient, CriError

KUBERNETES_NAMESPACE = "k8s.io"  # containerd namespace of the CRI plugin
START_TIMEOUT_S = 30.0


def containerd_config(base: Path, sandbox_image: str, snapshotter: str) -> str:
    """config.toml (version 2) for a daemon that keeps everything under `base`."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    runc = f"{cri}.containerd.runtimes.runc"
    return f"""version = 2
root = "{base}/root"
state = "{base}/state"
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[{cri}.containerd]
  snapshotter = "{snapshotter}"
  default_runtime_name = "runc"
[{runc}]
  runtime_type = "io.containerd.runc.v2"
[{runc}.options]
  SystemdCgroup = false
  Root = "{base}/state/runc"
[{cri}.cni]
  bin_dir = "{base}/cni/bin"
  conf_dir = "{base}/cni/net.d"
"""


class PrivateContainerd:
    """`containerd --config` under a fresh directory; stop() ends it and removes the directory."""

    def __init__(
        self, sandbox_image: Image, *, snapshotter: str = "overlayfs", parent: str = "/tmp", pod_network: bool = True
    ):
        for tool in ("containerd", "ctr", "runc"):
            if shutil.which(tool) is None:
                raise InputError(None, f"{tool} is not installed")
        # unix socket paths must stay under 108 bytes: a short directory of its own
        self.base = Path(tempfile.mkdtemp(prefix="cri-", dir=parent))
        self.sandbox_image = sandbox_image
        self.socket = self.base / "containerd.sock"
        self.endpoint = f"unix://{self.socket}"
        self.log_path = self.base / "containerd.log"
        (self.base / "config.toml").write_text(containerd_config(self.base, sandbox_image.name, snapshotter))
        plugins = cni.plugin_directory() if pod_network else None
        self.pod_network = cni.BridgeNetwork(self.base / "cni", plugins) if plugins else None
        self._daemon: subprocess.Popen | None = None

    def start(self) -> PrivateContainerd:
        with open(self.log_path, "w") as log:
            self._daemon = subprocess.Popen(
                ["containerd", "--config", str(self.base / "config.toml")], stdout=subprocess.DEVNULL, stderr=log
            )
        try:
            self._wait_for_cri()
            self.import_image(self.sandbox_image)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_cri(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with CriClient(self.endpoint, timeout_s=2) as client:
            while True:
                if self._daemon.poll() is not None:
                    raise InputError(self.log_path, f"containerd exited ({self._daemon.returncode}): {self.log_tail()}")
                try:
                    client.version()
                    return
                except CriError:
                    if time.monotonic() > deadline:
                        raise InputError(
                            self.log_path,
                            f"containerd's CRI did not answer within {START_TIMEOUT_S:.0f} s: {self.log_tail()}",
                        ) from None
                    time.sleep(0.1)

    def import_image(self, image: Image) -> None:
        """`ctr -n k8s.io images import`: by tag and by digest (name@sha256:...), as a pull leaves it."""
        repository = image.name.rpartition(":")[0]
        done = self.ctr("images", "import", "--base-name", repository, "--digests", str(image.archive))
        if done.returncode:
            raise InputError(image.archive, f"ctr images import failed: {done.stderr.strip()}")

    def ctr(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "-n", KUBERNETES_NAMESPACE, *args], capture_output=True, text=True
        )

    def client(self) -> CriClient:
        return CriClient(self.endpoint)

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_path.read_text()[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Remove every pod sandbox left (with its containers and shim), end the daemon, then
        unmount what it left mounted and remove its directory."""
        if self._daemon is not None and self._daemon.poll() is None:
            self.remove_all_sandboxes()
            self._daemon.terminate()
            try:
                self._daemon.wait(15)
            except subprocess.TimeoutExpired:
                self._daemon.kill()
                self._daemon.wait()
        for mountpoint in mounts_under(self.base):
            subprocess.run(["umount", "--lazy", mountpoint], capture_output=True)
        if self.pod_network is not None:
            self.pod_network.remove()
        shutil.rmtree(self.base, ignore_errors=True)

    def remove_all_sandboxes(self) -> None:
        """StopPodSandbox and RemovePodSandbox for each: the runtime kills and removes their
        containers too. Best effort: a daemon that does not answer is ended all the same."""
        try:
            with CriClient(self.endpoint, timeout_s=10) as client:
                for sandbox in client.list_pod_sandbox():
                    client.stop_pod_sandbox(sandbox.id)
                    client.remove_pod_sandbox(sandbox.id)
        except CriError:
            pass

    def __enter__(self) -> PrivateContainerd:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def mounts_under(directory: Path, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points at or below `directory`, deepest first (the order to unmount them)."""
    prefix = str(directory).rstrip("/") + "/"
    points = []
    for line in Path(mountinfo).read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix.rstrip("/") or point.startswith(prefix):
            points.append(point)
    return sorted(points, key=lambda p: -p.count("/"))
