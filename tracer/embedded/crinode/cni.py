"""The pod network of a node of our own: one CNI bridge, as a kubeadm node with the
`bridge` and `host-local` plugins has it (Debian's containernetworking-plugins).

Each pod gets its own network namespace with an address on a /24 that no route of this
machine uses; the bridge is the pods' gateway, so the node can reach a pod at its IP. No
masquerading, no port mapping: nothing leaves the machine. The plugins' state (the
addresses handed out) lives under the containerd's own directory; the bridge, which the
plugin makes on the first pod, is removed by `remove()`.
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

PLUGIN_DIRECTORIES = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))  # Debian's, upstream's
NEEDED_PLUGINS = ("bridge", "host-local", "loopback")
CNI_VERSION = "1.0.0"


def plugin_directory() -> Path | None:
    """Where the CNI plugins a bridge network needs are installed, if anywhere."""
    for directory in PLUGIN_DIRECTORIES:
        if all((directory / plugin).is_file() for plugin in NEEDED_PLUGINS):
            return directory
    return None


class BridgeNetwork:
    """A CNI bridge network written into a containerd's CNI directories (bin_dir, conf_dir)."""

    def __init__(self, cni_directory: Path, plugins: Path):
        self.bridge = f"trc{secrets.token_hex(3)}"  # interface names stop at 15 bytes
        self.subnet = unused_subnet()
        (cni_directory / "net.d").mkdir(parents=True, exist_ok=True)
        (cni_directory / "bin").symlink_to(plugins)
        conflist = {
            "cniVersion": CNI_VERSION,
            "name": "tracer-pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(self.subnet)}]],
                        "dataDir": str(cni_directory / "ipam"),
                    },
                }
            ],
        }
        (cni_directory / "net.d" / "10-tracer-pods.conflist").write_text(json.dumps(conflist, indent=2))

    def remove(self) -> None:
        """Delete the bridge (the pods' veths went with their namespaces)."""
        with IPRoute() as ipr:
            try:
                for index in ipr.link_lookup(ifname=self.bridge):
                    ipr.link("del", index=index)
            except NetlinkError:
                pass  # already gone


def unused_subnet(tries: int = 64) -> ipaddress.IPv4Network:
    """A /24 in 10.200.0.0/13 that overlaps no route or address of this machine."""
    with IPRoute() as ipr:
        taken = [
            ipaddress.ip_network(f"{route.get_attr('RTA_DST')}/{route['dst_len']}", strict=False)
            for route in ipr.get_routes(family=2)
            if route.get_attr("RTA_DST")
        ]
        taken += [
            ipaddress.ip_network(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False)
            for addr in ipr.get_addr(family=2)
        ]
    pool = list(ipaddress.ip_network("10.200.0.0/13").subnets(new_prefix=24))
    for candidate in random.sample(pool, tries):
        if not any(candidate.overlaps(network) for network in taken if network.prefixlen > 0):
            return candidate
    raise OSError("no unused /24 in 10.200.0.0/13 for the pod network")
