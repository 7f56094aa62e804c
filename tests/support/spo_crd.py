"""The Security Profiles Operator's SeccompProfile CRDs (tests/data), and validating an object
against one as the API server would: the CRD's structural schema, with its defaults applied."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
from ruamel.yaml import YAML

from support.paths import TEST_DATA

SPO_CRD = TEST_DATA / "spo-seccompprofile-crd.yaml"  # today's operator: v1, cluster-scoped


SPO_CRD_V1BETA1 = TEST_DATA / "spo-seccompprofile-crd-v1beta1.yaml"  # older: namespaced


def crd_version_schema(crd_file: Path = SPO_CRD, api: str = "v1") -> tuple[dict, dict]:
    crd = YAML(typ="safe").load(crd_file.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == api]
    return crd, version["schema"]["openAPIV3Schema"]


def as_json_schema(node):
    """The CRD's structural OpenAPI v3 schema, strict, as a JSON Schema.

    - `type: uint` (what this CRD says for errnoRet since SPO fixed it from string,
      kubernetes-sigs/security-profiles-operator#1769) is not a JSON Schema type: it is
      read as a non-negative integer;
    - the API server prunes fields a structural schema does not know; here they are
      errors, so a misspelt field fails the test instead of vanishing on apply.
    """
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: as_json_schema(value) for key, value in node.items() if key != "description"}
    if schema.get("type") == "uint":
        schema.update(type="integer", minimum=0)
    if schema.get("type") == "object" and "properties" in schema:
        schema["additionalProperties"] = False
    return schema


def with_crd_defaults(obj: dict, schema: dict) -> dict:
    """Apply the schema's `default`s as the API server does before validating."""
    obj = copy.deepcopy(obj)

    def fill(value, node):
        if not isinstance(value, dict):
            return
        for key, child in (node.get("properties") or {}).items():
            if key not in value and "default" in child:
                value[key] = child["default"]
            fill(value.get(key), child)

    fill(obj, schema)
    return obj


def validate_against_crd(obj: dict, crd_file: Path = SPO_CRD) -> None:
    api = obj["apiVersion"].rpartition("/")[2]
    crd, schema = crd_version_schema(crd_file, api)
    assert obj["apiVersion"] == f"{crd['spec']['group']}/{api}"
    assert obj["kind"] == crd["spec"]["names"]["kind"]
    # A cluster-scoped resource has no namespace; a namespaced one is put in one.
    assert ("namespace" in obj["metadata"]) == (crd["spec"]["scope"] == "Namespaced")
    jsonschema.Draft202012Validator(as_json_schema(schema)).validate(with_crd_defaults(obj, schema))
