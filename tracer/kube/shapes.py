"""Check that the fields the Pod Security checks read have the types the Kubernetes API gives them.

The API server decodes a manifest into typed Go structs: `privileged: "true"` (a string),
`drop: ALL` (a string, not a list), `containers: {a: ...}` (a mapping) are rejected there.
An evaluator that read such a manifest leniently would skip the field, or worse match a
substring, and call a pod allowed that Kubernetes would run privileged (YAML 1.1 booleans)
or never accept. So before judging, every field the checks and `k8s harden` read is checked
against `pod_schema.TYPES` (derived from the upstream OpenAPI, see `schema_derive`), and a
mismatch is an error naming the field's JSON path. Fields not in the table are ignored, as
the API server's default decoding ignores unknown fields.

Rules, as encoding/json decodes into the Go types: null is "unset" for any field; an integer
must fit its int32/int64 (a whole-number float already arrived as an integer, see yaml11);
list items and map values must not be null (the API would keep a zero value the author never
wrote; we refuse instead).
"""

from __future__ import annotations

from tracer.kube.pod_schema import TYPES
from tracer.schema import json_type

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class ShapeError(Exception):
    """A field whose value does not have its API type: `path: expected X, got Y`."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}" if path else problem)


def _expected(descriptor: str) -> str:
    if descriptor in ("boolean", "string", "object"):
        return descriptor
    if descriptor in _INT_RANGES:
        return "integer"
    if descriptor.startswith("[]"):
        return "array"
    return "object"  # map[string]T and named types


def join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def check(value, descriptor: str, path: str) -> None:
    """Raise ShapeError unless `value` (not None) has the type `descriptor` describes."""
    if descriptor == "boolean":
        ok = isinstance(value, bool)
    elif descriptor == "string":
        ok = isinstance(value, str)
    elif descriptor in _INT_RANGES:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not _INT_RANGES[descriptor][0] <= value <= _INT_RANGES[descriptor][1]:
            raise ShapeError(path, f"{value} is out of range for an {descriptor}")
    elif descriptor.startswith("[]"):
        ok = isinstance(value, list)
        if ok:
            for index, item in enumerate(value):
                _check_member(item, descriptor[2:], f"{path}[{index}]")
    elif descriptor.startswith("map[string]"):
        ok = isinstance(value, dict)
        if ok:
            for key, item in value.items():
                _check_member(item, descriptor[len("map[string]") :], f"{path}[{key}]")
    else:
        ok = isinstance(value, dict)
        if ok and descriptor != "object":
            check_fields(value, descriptor, path)
    if not ok:
        raise ShapeError(path, f"expected {_expected(descriptor)}, got {json_type(value)}")


def _check_member(value, descriptor: str, path: str) -> None:
    if value is None:
        raise ShapeError(path, f"expected {_expected(descriptor)}, got null")
    check(value, descriptor, path)


def check_fields(obj: dict, type_name: str, path: str = "") -> None:
    """Check the known fields of a mapping of API type `type_name`; unknown ones are ignored."""
    for field, descriptor in TYPES[type_name].items():
        value = obj.get(field)
        if value is not None:
            check(value, descriptor, join(path, field))


def check_object(obj, type_name: str, path: str = "") -> None:
    """Check a whole value of API type `type_name` (a mapping, or None for unset)."""
    if obj is not None:
        check(obj, type_name, path)


def check_pod(metadata, spec, path: str = "") -> None:
    """The pod metadata (ObjectMeta) and spec (PodSpec) the checks read."""
    check_object(metadata, "ObjectMeta", join(path, "metadata"))
    check_object(spec, "PodSpec", join(path, "spec"))
