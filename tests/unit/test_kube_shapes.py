"""The Kubernetes reading of manifests: go-yaml v2 scalars (yaml11) and the API field types (shapes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tracer.errors import InputError
from tracer.kube import pod_schema, pss, schema_derive, shapes, yaml11


def test_the_committed_schema_is_what_the_upstream_definitions_give():
    path, version = schema_derive.bundled_definitions()
    document = json.loads(path.read_text())
    derived, kinds = schema_derive.derive(document), schema_derive.derive_kinds(document)
    assert derived == pod_schema.TYPES
    assert {version: tuple(names) for version, names in kinds.items()} == pod_schema.API_KINDS
    committed = Path(pod_schema.__file__).read_text()
    assert committed == schema_derive.render(derived, kinds, pod_schema.SOURCE)
    assert f"Kubernetes v{version}" in pod_schema.SOURCE


def test_the_schema_types_what_the_checks_read():
    assert pod_schema.TYPES["SecurityContext"]["privileged"] == "boolean"
    assert pod_schema.TYPES["Capabilities"] == {"add": "[]string", "drop": "[]string"}
    assert pod_schema.TYPES["PodSpec"]["containers"] == "[]Container"
    assert pod_schema.TYPES["ContainerPort"]["hostPort"] == "int32"
    assert pod_schema.TYPES["ObjectMeta"]["annotations"] == "map[string]string"
    assert set(pod_schema.TYPES["Volume"]) - {"name"} == pss.VOLUME_SOURCES
    assert {"Pod", "PodList", "Service", "List"} <= set(pod_schema.API_KINDS["v1"])
    assert {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"} <= set(pod_schema.API_KINDS["apps/v1"])
    assert {"Job", "CronJob"} <= set(pod_schema.API_KINDS["batch/v1"])


# go-yaml v2 resolve() (yaml.v2 resolve.go) for untagged plain scalars.
RESOLVED = [
    # booleans: exactly this set, nothing else
    *[(text, True) for text in ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE")],
    *[(text, False) for text in ("n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE")],
    *[(text, text) for text in ("yEs", "oN", "tRUE", "Off!", "yes please", "t", "f", "T", "F", "enable")],
    # nulls
    *[(text, None) for text in ("", "~", "null", "Null", "NULL")],
    ("nULL", "nULL"),
    # integers: decimal, octal with a leading 0, 0o, hex, binary, underscores, signs, 64 bits
    ("0", 0),
    ("-0", 0),
    ("+12", 12),
    ("0755", 0o755),
    ("0o755", 0o755),
    ("0x1F", 31),
    ("0X1f", 31),
    ("0b101", 5),
    ("-0b101", -5),
    ("1_000", 1000),
    ("0x_1F", 31),
    ("9223372036854775807", 2**63 - 1),
    ("-9223372036854775808", -(2**63)),
    ("18446744073709551615", 2**64 - 1),
    # floats (before the JSON conversion)
    ("1.5", 1.5),
    (".5", 0.5),
    ("1e3", 1000.0),
    ("-1.5e-3", -0.0015),
    ("08", 8.0),
    ("1.", 1.0),
    ("18446744073709551616", 18446744073709551616.0),
    # strings: sexagesimal and other YAML 1.1 forms go-yaml v2 leaves alone, timestamps, overflow
    ("1:30", "1:30"),
    ("190:20:30", "190:20:30"),
    ("2001-12-14", "2001-12-14"),
    ("1e400", "1e400"),
    ("0x", "0x"),
    ("0b", "0b"),
    ("1_", 1),
    ("_1", "_1"),
    ("._5", "._5"),
    ("=", "="),
    ("<<", "<<"),
    ("0x1p4", "0x1p4"),
]


@pytest.mark.parametrize("text, value", RESOLVED)
def test_plain_scalars_resolve_as_go_yaml_v2(text, value):
    tag, resolved = yaml11.resolve("", text)
    assert type(resolved) is type(value) and resolved == value, (tag, resolved)


def test_special_floats():
    assert math.isinf(yaml11.resolve("", ".inf")[1]) and yaml11.resolve("", "-.Inf")[1] < 0
    assert math.isnan(yaml11.resolve("", ".NaN")[1])


def load(text: str):
    return [document.value for document in yaml11.load_yaml(text, "m.yaml")]


def test_the_json_conversion_of_sigs_k8s_io_yaml():
    (document,) = load("yes: 1\n1: a\n0x10: b\n1.5: c\n1e6: d\nwhole: 2.0\nbig: 1e20\nhuge: 1e21\nneg: -0.0\n")
    assert document == {
        "true": 1,
        "1": "a",
        "16": "b",
        "1.5": "c",
        "1e+06": "d",
        "whole": 2,
        "big": 10**20,
        "huge": 1e21,
        "neg": 0,
    }
    assert type(document["whole"]) is int


def test_quoted_block_and_tagged_scalars():
    (document,) = load(
        'a: "yes"\nb: \'0755\'\nc: |\n  on\nd: !!str on\ne: !!int "0755"\nf: !!bool "Off"\n'
        "g: !!float 1\nh: !custom yes\ni: ! 12\nj: !!binary aGk=\n"
    )
    assert document == {
        "a": "yes",
        "b": "0755",
        "c": "on\n",
        "d": "on",
        "e": 493,
        "f": False,
        "g": 1,
        "h": "yes",
        "i": "12",
        "j": "hi",
    }


def test_merge_keys_follow_go_yaml_v2_order():
    (document,) = load(
        "base: &b {x: 1, z: 1}\nm: {<<: *b, x: 2}\nlate: {x: 2, <<: *b}\n"
        "many: {<<: [{x: 1}, {x: 2, w: 2}]}\n'<<': quoted\n"
    )
    assert document["m"] == {"x": 2, "z": 1}
    assert document["late"] == {"x": 1, "z": 1}  # v2: the merge, coming later, overwrites
    assert document["many"] == {"x": 1, "w": 2}  # earlier maps in the list win
    assert document["<<"] == "quoted"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("1: a\n'1': b\n", "duplicate key '1'"),
        ("a: .inf\n", ".inf cannot be represented in JSON"),
        ("a: !!int 1.5\n", "cannot decode !!float `1.5` as a !!int"),
        ("a: !!null x\n", "cannot decode !!str `x` as a !!null"),
        ("a: !!binary '***'\n", "invalid base64"),
        ("a: *b\n", "unknown anchor 'b'"),
        ("a: &a [*a]\n", "unknown anchor 'a'"),
        ("? [a]\n: b\n", "mapping keys must be scalars"),
        ("a: {<<: 5}\n", "map merge requires map or sequence of maps"),
        ("a: " + "[" * 101 + "]" * 101 + "\n", "nested deeper than 100 levels"),
        ("a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 45 + "*a" + "]" * 45 + "\n", "through an alias"),
        ("a: " + "1" * 101 + "\n", "number longer than 100 characters"),
        ("a: 0x" + "f" * 99 + "\n", "number longer than 100 characters"),
        ("a: ." + "5" * 100 + "\n", "number longer than 100 characters"),
    ],
)
def test_refusals_name_the_document_and_line(text, problem):
    with pytest.raises(InputError) as raised:
        yaml11.load_yaml("x: 1\n---\n" + text, "m.yaml")
    assert raised.value.source == "m.yaml"
    assert raised.value.problem.startswith("document 2: line ") and problem in raised.value.problem
    assert "\n" not in raised.value.problem


def test_long_strings_that_are_not_numbers_are_fine():
    (document,) = load("a: " + "1" * 50 + "x" * 200 + "\nb: " + "9." * 100 + "\n")
    assert document["a"].endswith("x") and document["b"].startswith("9.9.")


def test_alias_expansion_is_bounded_by_nodes_not_bytes():
    fine = "a: &a [" + ", ".join(["x"] * 50) + "]\nb: [" + ", ".join(["*a"] * 100) + "]\n"
    (document,) = load(fine)
    assert len(document["b"]) == 100 and document["b"][0] is document["b"][1]  # shared, not copied
    with pytest.raises(InputError, match="aliases expand to more than 10000 nodes"):
        load("a: &a [" + ", ".join(["x"] * 99) + "]\nb: [" + ", ".join(["*a"] * 200) + "]\n")


def test_read_text_bounds_and_decoding(tmp_path):
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbfkind: Pod\n")
    assert yaml11.read_text(tmp_path / "bom.yaml") == "kind: Pod\n"
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8"):
        yaml11.read_text(tmp_path / "latin1.yaml")
    (tmp_path / "big.yaml").write_bytes(b"#" * (yaml11.MAX_BYTES + 1))
    with pytest.raises(InputError, match="larger than 8 MiB"):
        yaml11.read_text(tmp_path / "big.yaml")


def test_json_has_the_same_rules():
    (document,) = yaml11.load_json('{"a": 1.0, "b": [2e0, "\\ud800"], "c": 1.25}', "m.json")
    assert document.value == {"a": 1, "b": [2, "\ufffd"], "c": 1.25} and type(document.value["a"]) is int
    for text, problem in [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a": Infinity}', "Infinity is not JSON"),
        ('{"a": 1e400}', "out of range"),
        ('{"a": ' + "1" * 101 + "}", "longer than 100"),
        ("[" * 101 + "]" * 101, "nested deeper than 100"),
        ("[" * 5000 + "]" * 5000, "nested deeper"),
    ]:
        with pytest.raises(InputError, match="invalid JSON") as raised:
            yaml11.load_json(text, "m.json")
        assert problem in raised.value.problem


# --- shapes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, descriptor, problem",
    [
        ("true", "boolean", "expected boolean, got string"),
        (1, "boolean", "expected boolean, got integer"),
        (True, "string", "expected string, got boolean"),
        (True, "int64", "expected integer, got boolean"),
        (1.5, "int64", "expected integer, got number"),
        (2**31, "int32", "2147483648 is out of range for an int32"),
        (-(2**63) - 1, "int64", "is out of range for an int64"),
        ("ALL", "[]string", "expected array, got string"),
        ([None], "[]string", "x[0]: expected string, got null"),
        ({"a": 1}, "map[string]string", "x[a]: expected string, got integer"),
        ([], "SecurityContext", "expected object, got array"),
        ({"privileged": "yes"}, "SecurityContext", "x.privileged: expected boolean, got string"),
        ({"capabilities": {"drop": [1]}}, "SecurityContext", "x.capabilities.drop[0]: expected string, got integer"),
    ],
)
def test_shape_errors_name_the_field(value, descriptor, problem):
    with pytest.raises(shapes.ShapeError) as raised:
        shapes.check(value, descriptor, "x")
    assert problem in str(raised.value)


def test_null_fields_and_unknown_fields_are_fine():
    """As the API server reads a pod: a null field is unset, an unknown one (even a misspelt
    `Privileged`) is dropped; neither makes the pod unjudgeable nor privileged."""
    context = {"privileged": None, "capabilities": None, "futureField": [1, "x"]}
    assert pss.evaluate(None, {"containers": [{"name": "a", "securityContext": context}]}, "baseline").allowed
    assert pss.evaluate(None, {"containers": [{"name": "a", "Privileged": "yes"}], "hostPID": None}, "baseline").allowed


def test_evaluate_refuses_a_pod_it_cannot_judge():
    with pytest.raises(InputError, match=r"spec\.containers\[0\]\.securityContext\.privileged: expected boolean"):
        pss.evaluate({}, {"containers": [{"name": "a", "securityContext": {"privileged": "true"}}]}, "baseline")
    with pytest.raises(InputError, match=r"spec\.containers: expected array, got object"):
        pss.strictest_level({}, {"containers": {"name": "a"}})
    with pytest.raises(InputError, match=r"metadata\.annotations\[a\]: expected string, got integer"):
        pss.evaluate({"annotations": {"a": 1}}, {}, "restricted")
