"""tracer/kube/networkpolicy.py and `tracer network`: NetworkPolicy from a network surface."""

from __future__ import annotations

import random
import uuid

import kubernetes_validate
import orjson
import pytest
from ruamel.yaml import YAML

from support.cli import tracer_cli
from tracer.errors import InputError
from tracer.kube.networkpolicy import KUBE_DNS_PEER, network_policy, parse_pod_labels
from tracer.network.surface import Destination, Interface, ListeningSocket, NetworkSurface

K8S_VERSION = kubernetes_validate.latest_version()
LABELS = {"app": "mini-nim"}


def surface(destinations=None, listening=None) -> NetworkSurface:
    listeners = (
        listening
        if listening is not None
        else (
            ListeningSocket("tcp", "ipv4", "0.0.0.0", 8000),
            ListeningSocket("tcp", "ipv4", "127.0.0.1", 9000),
            ListeningSocket("tcp", "ipv6", "::", 8000),
            ListeningSocket("udp", "ipv6", "::", 5353),
        )
    )
    return NetworkSurface(listeners, (Interface("lo", None, True, True, ("127.0.0.1/8",)),), destinations)


def dest(address: str, port: int, protocol: str = "tcp", count: int = 1) -> Destination:
    return Destination(protocol, "ipv6" if ":" in address else "ipv4", address, port, count)


def policy(s: NetworkSurface, namespace: str | None = "nim"):
    generated = network_policy(s, "mini-nim", LABELS, namespace)
    kubernetes_validate.validate(generated.manifest, K8S_VERSION, strict=True)
    return generated


def test_ingress_allows_the_reachable_ports_only():
    generated = policy(surface([]))
    spec = generated.manifest["spec"]
    assert spec["podSelector"] == {"matchLabels": LABELS}
    assert spec["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}, {"protocol": "UDP", "port": 5353}]}]
    assert any("tcp 127.0.0.1:9000 listens on loopback only" in note for note in generated.notes)


def test_nothing_reachable_denies_all_ingress():
    only_loopback = (ListeningSocket("tcp", "ipv4", "127.0.0.1", 9000),)
    generated = policy(surface([], listening=only_loopback))
    assert "ingress" not in generated.manifest["spec"]
    assert "Ingress" in generated.manifest["spec"]["policyTypes"]
    assert "nothing listens outside loopback: all ingress is denied" in generated.notes


def test_no_destinations_recorded_denies_all_egress():
    generated = policy(surface([]))
    assert generated.manifest["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in generated.manifest["spec"]
    assert "no outbound traffic was recorded: all egress is denied, DNS included" in generated.notes


def test_unrecorded_destinations_leave_egress_open_with_a_note():
    generated = policy(surface(None))
    assert generated.manifest["spec"]["policyTypes"] == ["Ingress"]
    assert "egress" not in generated.manifest["spec"]
    assert any(
        note.startswith("outbound destinations were not recorded: egress is left open") for note in generated.notes
    )


def test_egress_allows_each_destination_address_with_its_ports():
    generated = policy(
        surface(
            [
                dest("10.0.0.9", 443, count=7),
                dest("10.0.0.9", 8125, "udp"),
                dest("2001:db8::5", 443),
                dest("::ffff:192.0.2.7", 80),
            ]
        )
    )
    assert generated.manifest["spec"]["egress"] == [
        {
            "to": [{"ipBlock": {"cidr": "10.0.0.9/32"}}],
            "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "UDP", "port": 8125}],
        },
        {"to": [{"ipBlock": {"cidr": "192.0.2.7/32"}}], "ports": [{"protocol": "TCP", "port": 80}]},
        {"to": [{"ipBlock": {"cidr": "2001:db8::5/128"}}], "ports": [{"protocol": "TCP", "port": 443}]},
    ]
    assert not any("kube-dns" in note for note in generated.notes)


def test_dns_seen_allows_kube_dns():
    generated = policy(surface([dest("10.96.0.10", 53, "udp", 12), dest("10.0.0.9", 443)]))
    dns_rule, *others = generated.manifest["spec"]["egress"]
    assert dns_rule == {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}],
    }
    assert {"to": [{"ipBlock": {"cidr": "10.96.0.10/32"}}], "ports": [{"protocol": "UDP", "port": 53}]} in others
    assert any("DNS to port 53 was seen (udp 10.96.0.10:53)" in note for note in generated.notes)


def test_loopback_destinations_need_no_rule():
    generated = policy(surface([dest("127.0.0.1", 9000), dest("::1", 53, "udp")]))
    assert generated.manifest["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in generated.manifest["spec"]  # a DNS cache inside the pod is not kube-dns
    assert sum("stays inside the pod" in note for note in generated.notes) == 2


def test_link_local_destinations_are_allowed_with_a_warning():
    generated = policy(surface([dest("169.254.169.254", 80)]))
    assert generated.manifest["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}], "ports": [{"protocol": "TCP", "port": 80}]}
    ]
    assert any("instance metadata service" in note for note in generated.notes)


def test_output_is_deterministic_and_carries_the_notes_as_comments():
    destinations = [
        dest("10.0.0.9", 443),
        dest("10.96.0.10", 53, "udp"),
        dest("2001:db8::5", 443),
        dest("10.0.0.3", 5432),
    ]
    texts = set()
    for seed in range(5):
        shuffled = destinations[:]
        random.Random(seed).shuffle(shuffled)
        texts.add(network_policy(surface(shuffled), "mini-nim", LABELS, "nim").to_yaml())
    (text,) = texts
    assert text.startswith("# NetworkPolicy from the network surface seccomp-tracer observed.\n# - ")
    assert "# - tcp 127.0.0.1:9000 listens on loopback only" in text
    reread = YAML(typ="safe").load(text)
    assert reread == network_policy(surface(destinations), "mini-nim", LABELS, "nim").manifest


def test_policy_without_namespace_validates():
    generated = policy(surface([]), namespace=None)
    assert "namespace" not in generated.manifest["metadata"]


@pytest.mark.parametrize(
    ("name", "labels", "namespace", "message"),
    [
        ("Mini_NIM", LABELS, None, "NetworkPolicy name 'Mini_NIM'"),
        ("mini-nim", LABELS, "Bad.NS", "namespace 'Bad.NS'"),
        ("mini-nim", {}, None, "an empty selector would select every pod"),
        ("mini-nim", {"app": "-bad"}, None, "pod label app=-bad"),
        ("mini-nim", {"/app": "x"}, None, "the prefix must be a DNS subdomain"),
        ("mini-nim", {"a" * 64: "x"}, None, "the name must be at most 63"),
    ],
)
def test_bad_names_and_labels_are_input_errors(name, labels, namespace, message):
    with pytest.raises(InputError, match=message.replace(".", r"\.").replace("(", r"\(")):
        network_policy(surface([]), name, labels, namespace)


def test_prefixed_and_empty_label_values_are_accepted():
    labels = {"app.kubernetes.io/name": "nim", "tier": ""}
    manifest = network_policy(surface([]), "mini-nim", labels).manifest
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    assert manifest["spec"]["podSelector"]["matchLabels"] == labels


def test_selector_strings_parse_as_labels():
    assert parse_pod_labels(["app=nim", "tier="]) == {"app": "nim", "tier": ""}
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_pod_labels(["app"])


def test_kube_dns_peer_is_not_shared_mutable_state():
    first = network_policy(surface([dest("10.96.0.10", 53, "udp")]), "a", LABELS).manifest
    first["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"] = "changed"
    assert KUBE_DNS_PEER["podSelector"]["matchLabels"]["k8s-app"] == "kube-dns"


# ---------------------------------------------------------------- the command line


def test_cli_writes_the_policy_from_a_surface_file(tmp_path):
    path = tmp_path / "surface.json"
    path.write_bytes(orjson.dumps(surface([dest("10.96.0.10", 53, "udp")]).to_json()))
    out = tmp_path / "policy.yaml"
    done = tracer_cli(
        "network",
        "policy",
        str(path),
        "--name",
        "mini-nim",
        "--selector",
        "app=mini-nim",
        "--namespace",
        "nim",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    manifest = YAML(typ="safe").load(out.read_text())
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    assert manifest["spec"]["egress"][0]["to"] == [KUBE_DNS_PEER]
    assert "note: tcp 127.0.0.1:9000 listens on loopback only" in done.stderr


def test_cli_reads_the_network_section_of_a_trace(tmp_path):
    path = tmp_path / "trace.json"
    path.write_bytes(orjson.dumps({"format": "seccomp-tracer/trace", "version": 2, "network": surface([]).to_json()}))
    done = tracer_cli("network", "policy", str(path), "--name", "mini-nim", "--selector", "app=mini-nim")
    assert done.returncode == 0, done.stderr
    assert YAML(typ="safe").load(done.stdout)["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": 2, "network": None}, "the trace has no network section"),
        ({"listening": []}, "surface: missing interfaces, destinations"),
        (
            {"version": 2, "network": {"listening": [], "interfaces": [], "destinations": [{"port": 1}]}},
            "network.destinations[0]: missing",
        ),
    ],
)
def test_cli_bad_surface_exits_2_naming_the_file(tmp_path, document, message):
    path = tmp_path / "input.json"
    path.write_bytes(orjson.dumps(document))
    done = tracer_cli("network", "policy", str(path), "--name", "x", "--selector", "app=x", check=False)
    assert done.returncode == 2
    assert str(path) in done.stderr and message in done.stderr


def test_cli_bad_selector_exits_2(tmp_path):
    path = tmp_path / "surface.json"
    path.write_bytes(orjson.dumps(surface([]).to_json()))
    done = tracer_cli("network", "policy", str(path), "--name", "x", "--selector", "app", check=False)
    assert done.returncode == 2
    assert "expected KEY=VALUE" in done.stderr


def test_cli_observe_missing_namespace_exits_2():
    done = tracer_cli("network", "observe", f"tracer-missing-{uuid.uuid4().hex[:8]}", check=False)
    assert done.returncode == 2
    assert "no such network namespace" in done.stderr
    assert tracer_cli("network", "observe", check=False).returncode == 2  # neither NETNS nor --pid
