"""A Kubernetes NetworkPolicy (networking.k8s.io/v1) from an observed network surface.

Ingress: only the ports the pod was seen listening on from outside loopback, from any source (the
recording shows which ports serve, not who calls them). Egress: only the recorded destinations,
each address as an ipBlock of one address with its ports, plus cluster DNS (kube-dns, UDP and
TCP 53) when traffic to port 53 was seen. Where destinations were not recorded, egress is left
open with a note: an unrecorded destination list is never guessed.
"""

from __future__ import annotations

import copy
import io
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from tracer.errors import InputError
from tracer.kube.admission import dns1123_label_problems, dns1123_subdomain_problems
from tracer.network.surface import Destination, NetworkSurface

API_VERSION = "networking.k8s.io/v1"
DNS_PORT = 53
KUBE_DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


@dataclass(frozen=True)
class GeneratedPolicy:
    manifest: dict
    notes: tuple[str, ...]  # what the policy leaves out or open, and why

    def to_yaml(self) -> str:
        """The manifest as YAML, the notes as comments above it."""
        document = CommentedMap(self.manifest)
        header = ["NetworkPolicy from the network surface seccomp-tracer observed."]
        header += [f"- {note}" for note in self.notes]
        document.yaml_set_start_comment("\n".join(header))
        yaml = YAML(typ="rt")
        yaml.default_flow_style = False
        yaml.width = 4096  # one note, one line
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        return buffer.getvalue()


def network_policy(
    surface: NetworkSurface, name: str, pod_labels: Mapping[str, str], namespace: str | None = None
) -> GeneratedPolicy:
    """The NetworkPolicy for the pods with `pod_labels` (all of them), from `surface`."""
    check_object_names(name, namespace)
    check_pod_labels(pod_labels)
    ingress, ingress_notes = ingress_rules(surface)
    egress, egress_notes = egress_rules(surface.destinations)
    metadata = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/managed-by": "seccomp-tracer"}
    spec = {
        "podSelector": {"matchLabels": dict(sorted(pod_labels.items()))},
        "policyTypes": ["Ingress"] if egress is None else ["Ingress", "Egress"],
    }
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    manifest = {"apiVersion": API_VERSION, "kind": "NetworkPolicy", "metadata": metadata, "spec": spec}
    return GeneratedPolicy(manifest, tuple(ingress_notes + egress_notes))


def ingress_rules(surface: NetworkSurface) -> tuple[list[dict], list[str]]:
    """One rule allowing every reachable listening port, from anywhere; notes on what is left out."""
    notes = [
        f"{s.describe()} listens on loopback only: not reachable from outside the pod, no rule"
        for s in surface.listening
        if surface.loopback_only(s)
    ]
    ports = policy_ports((s.protocol, s.port) for s in surface.reachable_listeners())
    if not ports:
        notes.append("nothing listens outside loopback: all ingress is denied")
        return [], notes
    return [{"ports": ports}], notes


def egress_rules(destinations: tuple[Destination, ...] | None) -> tuple[list[dict] | None, list[str]]:
    """The egress rules, or None (egress not restricted) where destinations were not recorded."""
    if destinations is None:
        return None, [
            "outbound destinations were not recorded: egress is left open "
            "(no Egress in policyTypes); record them to restrict it"
        ]
    if not destinations:
        return [], ["no outbound traffic was recorded: all egress is denied, DNS included"]
    notes = [
        f"{d.describe()} stays inside the pod: loopback traffic needs no rule" for d in destinations if inside_pod(d)
    ]
    leaving = [d for d in destinations if not inside_pod(d)]
    if not leaving:
        return [], notes + ["no traffic leaving the pod was recorded: all egress is denied, DNS included"]
    rules = []
    dns = [d for d in leaving if d.port == DNS_PORT]
    if dns:
        rules.append(
            {"to": [copy.deepcopy(KUBE_DNS_PEER)], "ports": policy_ports([("udp", DNS_PORT), ("tcp", DNS_PORT)])}
        )
        notes.append(
            f"DNS to port 53 was seen ({', '.join(d.describe() for d in dns)}): allowed to "
            "kube-dns in kube-system on UDP and TCP 53, and to the addresses seen"
        )
    notes += [
        f"{d.describe()} is link-local (on clouds 169.254.169.254 is the instance metadata "
        "service): allowed because it was seen, check that it is intended"
        for d in leaving
        if wire_address(d.address).is_link_local
    ]
    return rules + address_rules(leaving), notes


def inside_pod(destination: Destination) -> bool:
    address = wire_address(destination.address)
    return address.is_loopback or address.is_unspecified


def address_rules(destinations: Iterable[Destination]) -> list[dict]:
    """One rule per address: an ipBlock of that address alone, with the ports seen to it."""
    ports_by_address: dict = {}
    for destination in destinations:
        address = wire_address(destination.address)
        ports_by_address.setdefault(address, set()).add((destination.protocol, destination.port))
    return [
        {
            "to": [{"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}],
            "ports": policy_ports(ports_by_address[address]),
        }
        for address in sorted(ports_by_address, key=lambda a: (a.version, a))
    ]


def wire_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address as the packet carries it: an IPv4-mapped IPv6 address is sent as IPv4."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def policy_ports(pairs: Iterable[tuple[str, int]]) -> list[dict]:
    """NetworkPolicyPort entries, one per (protocol, port), TCP before UDP, ports ascending."""
    return [{"protocol": protocol.upper(), "port": port} for protocol, port in sorted(set(pairs))]


def check_object_names(name: str, namespace: str | None) -> None:
    problems = dns1123_subdomain_problems(name)
    if problems:
        raise InputError(None, f"NetworkPolicy name {name!r}: {'; '.join(problems)}")
    if namespace is not None:
        problems = dns1123_label_problems(namespace)
        if problems:
            raise InputError(None, f"namespace {namespace!r}: {'; '.join(problems)}")


def check_pod_labels(labels: Mapping[str, str]) -> None:
    """Label selectors as the API server validates them; at least one, since an empty selector
    would put the policy on every pod in the namespace."""
    if not labels:
        raise InputError(None, "no pod label given: an empty selector would select every pod in the namespace")
    for key, value in labels.items():
        problem = label_key_problem(key) or label_value_problem(value)
        if problem:
            raise InputError(None, f"pod label {key}={value}: {problem}")


def label_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or dns1123_subdomain_problems(prefix)):
        return "the prefix must be a DNS subdomain (e.g. example.com)"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return "the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    return None


def label_value_problem(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63 or not _LABEL_NAME.match(value):
        return (
            "the value must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
        )
    return None


def parse_pod_labels(selectors: Iterable[str]) -> dict[str, str]:
    """KEY=VALUE strings (the CLI's --selector) as a label map."""
    labels = {}
    for selector in selectors:
        key, sep, value = selector.partition("=")
        if not sep:
            raise InputError(None, f"--selector {selector!r}: expected KEY=VALUE")
        labels[key] = value
    return labels
