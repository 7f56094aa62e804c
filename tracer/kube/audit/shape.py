"""What a JSON value must look like to be analysed as an audit Event.

Two questions, asked of every value that is parsed: is it an audit Event at all (kind,
apiVersion, auditID, stage, a time), and does every field the analysis reads have the JSON
type audit.k8s.io/v1 gives it. A wrong type (`user` a string, `responseStatus.code` a
string, ...) makes the event malformed instead of a crash further on, so the attribution
code may trust the types.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracer.kube.audit.timestamps import event_time
from tracer.schema import json_type


@dataclass(frozen=True)
class ListOf:
    item: object


@dataclass(frozen=True)
class MapOf:
    value: object


NUMBER = (int, float)

OBJECT_META = {
    "name": str,
    "generateName": str,
    "namespace": str,
    "ownerReferences": ListOf({"kind": str, "name": str, "controller": bool}),
}

# The fields the analysis reads (audit.k8s.io/v1 Event), each with its JSON type; dicts are
# objects with these fields. JSON null stands for "not set" (Go's nil pointers and maps).
EVENT_FIELDS = {
    "auditID": str,
    "stage": str,
    "requestReceivedTimestamp": str,
    "stageTimestamp": str,
    "userAgent": str,
    "user": {"username": str},
    "impersonatedUser": {"username": str},
    "objectRef": {"resource": str, "namespace": str, "name": str},
    "responseStatus": {"code": NUMBER, "message": str, "details": {"name": str}},
    "requestObject": {"metadata": OBJECT_META},
    "responseObject": {"metadata": {"name": str}},
    "annotations": MapOf(str),
}


def event_problem(value) -> str | None:
    """Why `value` cannot be analysed as an audit Event, or None."""
    if (problem := not_an_event(value)) is not None:
        return problem
    if (problem := field_problem(value)) is not None:
        return f"bad audit Event: {problem}"
    return None


def not_an_event(value) -> str | None:
    """Why `value` is not an audit Event at all, or None when it is one."""
    if not isinstance(value, dict):
        return f"not an audit Event: a JSON {json_type(value)}"
    kind, api_version = value.get("kind", "Event"), value.get("apiVersion", "audit.k8s.io/v1")
    if kind != "Event" or not str(api_version).startswith("audit.k8s.io/"):
        return f"not an audit Event: kind={kind!r} apiVersion={api_version!r}"
    if not value.get("auditID") or not value.get("stage"):
        return "not an audit Event: no auditID or stage"
    if event_time(value) is None:
        return "audit Event without a valid stageTimestamp or requestReceivedTimestamp"
    return None


def is_audit_event_list(value) -> bool:
    return (
        isinstance(value, dict)
        and value.get("kind") == "EventList"
        and str(value.get("apiVersion", "audit.k8s.io/v1")).startswith("audit.k8s.io/")
    )


def field_problem(event: dict) -> str | None:
    """`path is a T, expected a U` for the first field of the wrong JSON type, or None."""
    return _check_event(event)


# Each expected type becomes a checker: value -> None, or " is a T, expected a U" with the
# path below that value in front ("user.username is ...", "[0].kind is ..."). Built once:
# walking the spec for every event would cost more than parsing it.


def _checker(expected):
    if isinstance(expected, dict):
        return _object_checker({key: _checker(sub) for key, sub in expected.items()})
    if isinstance(expected, ListOf):
        return _list_checker(_checker(expected.item))
    if isinstance(expected, MapOf):
        return _map_checker(_checker(expected.value))
    return _scalar_checker(expected)


def _object_checker(fields: dict):
    def check(value):
        if type(value) is not dict:
            return _wrong_type(value, "an object")
        for key, check_field in fields.items():
            field = value.get(key)
            if field is not None and (problem := check_field(field)) is not None:
                return key + _joined(problem)
        return None

    return check


def _list_checker(check_item):
    def check(value):
        if type(value) is not list:
            return _wrong_type(value, "an array")
        for index, item in enumerate(value):
            if item is not None and (problem := check_item(item)) is not None:
                return f"[{index}]{_joined(problem)}"
        return None

    return check


def _map_checker(check_value):
    def check(value):
        if type(value) is not dict:
            return _wrong_type(value, "an object")
        for key, item in value.items():
            if item is not None and (problem := check_value(item)) is not None:
                return f"[{key!r}]{_joined(problem)}"
        return None

    return check


def _scalar_checker(expected):
    types = expected if isinstance(expected, tuple) else (expected,)
    name = _TYPE_NAMES[expected]

    def check(value):
        # type(), not isinstance(): JSON true must not pass for a number
        return None if type(value) in types else _wrong_type(value, name)

    return check


def _joined(problem: str) -> str:
    """A nested problem below its parent's path: `.name is ...`, `[0].kind is ...`, ` is ...`."""
    return problem if problem.startswith((" ", "[")) else "." + problem


def _wrong_type(value, expected: str) -> str:
    found = json_type(value)
    return f" is {'an' if found[0] in 'aeiou' else 'a'} {found}, expected {expected}"


_TYPE_NAMES = {str: "a string", bool: "a boolean", NUMBER: "a number"}
_check_event = _checker(EVENT_FIELDS)
