"""Checks for the profile files a user hands us: seccomp.json (an OCI runtime-spec
`LinuxSeccomp`), capabilities.json and recording.json.

seccomp.json is checked against the runtime-spec's own schema (copied, data only, into
tracer/profile/data/), then against what runc and libseccomp accept beyond it: every syscall
name known to libseccomp on one of the listed architectures, errno values only with the
actions that return one, argument indices below six. Every problem is an
`InputError(file, "json.path: problem")`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from tracer.capabilities import CAPABILITY_NAMES
from tracer.errors import InputError
from tracer.profile.filter import ERRNO_ACTIONS, filter_from_oci
from tracer.schema import Schema, SchemaViolation, load_schema
from tracer.syscalls import syscall_name_known

RUNTIME_SPEC_SECCOMP = Path(__file__).with_name("data") / "runtime-spec-seccomp.schema.json"
MAX_ARG_INDEX = 5  # syscalls take six arguments; libseccomp refuses a condition on a seventh
SYSCALL_NAME = re.compile(r"[a-z0-9_]{1,64}")

CAPABILITY_LISTS = {
    "type": "object",
    "propertyNames": {"enum": list(CAPABILITY_NAMES)},
    "additionalProperties": {"type": "array"},
}
CAPABILITIES_SCHEMA = Schema(
    {
        "type": "object",
        "required": ["add", "drop"],
        "properties": {
            "add": {"type": "array", "items": {"title": "a capability name", "enum": list(CAPABILITY_NAMES)}},
            "drop": {
                "type": "array",
                "items": {"title": "ALL or a capability name", "enum": ["ALL", *CAPABILITY_NAMES]},
            },
            "evidence": CAPABILITY_LISTS,
            "failed_without": CAPABILITY_LISTS,
            "not_required": CAPABILITY_LISTS,
        },
    }
)
RECORDING_SCHEMA = Schema(
    {
        "type": "object",
        "properties": {
            "tool_version": {"type": "string"},
            "traces": {"type": "array", "items": {"type": "object"}},
            "rootfs_readonly": {"type": ["boolean", "null"]},
            "writes_outside_volumes": {"type": ["boolean", "null"]},
            "run_as_user": {"type": ["integer", "null"], "minimum": 0, "maximum": 4294967295},
        },
    }
)


@cache
def runtime_spec_seccomp() -> Schema:
    return load_schema(RUNTIME_SPEC_SECCOMP)


def check_seccomp(file: str | Path, seccomp) -> None:
    """An OCI LinuxSeccomp that runc would load as written, or InputError(file, ...)."""
    try:
        runtime_spec_seccomp().check(seccomp)
        _check_errno(("defaultErrnoRet",), seccomp.get("defaultAction"), "defaultErrnoRet" in seccomp)
        if "listenerMetadata" in seccomp and "listenerPath" not in seccomp:
            raise SchemaViolation(("listenerMetadata",), "set without listenerPath (the runtime-spec forbids it)")
        for index, rule in enumerate(seccomp.get("syscalls", ())):
            _check_rule(("syscalls", index), rule, seccomp.get("architectures", ()))
    except SchemaViolation as err:
        raise InputError(file, str(err)) from None
    filter_from_oci(seccomp, str(file))  # what every rule's conditions mean together


def _check_errno(path: tuple, action: str, has_errno: bool) -> None:
    if has_errno and action not in ERRNO_ACTIONS:
        raise SchemaViolation(path, f"{action} returns no errno (only {' and '.join(ERRNO_ACTIONS)} do)")


def _check_rule(path: tuple, rule: dict, architectures) -> None:
    _check_errno(path + ("errnoRet",), rule["action"], "errnoRet" in rule)
    for index, name in enumerate(rule["names"]):
        if not SYSCALL_NAME.fullmatch(name) or not syscall_name_known(name, architectures):
            where = ", ".join(architectures) or "this machine's architecture"
            raise SchemaViolation(path + ("names", index), f"{name!r} is not a syscall libseccomp knows on {where}")
    for index, condition in enumerate(rule.get("args", ())):
        if condition["index"] > MAX_ARG_INDEX:
            raise SchemaViolation(
                path + ("args", index, "index"),
                f"{condition['index']} is above {MAX_ARG_INDEX}: a syscall has six arguments",
            )


def check_capabilities(file: str | Path, capabilities) -> None:
    _check_against(CAPABILITIES_SCHEMA, file, capabilities)


def check_recording(file: str | Path, recording) -> None:
    _check_against(RECORDING_SCHEMA, file, recording)


def _check_against(schema: Schema, file, document) -> None:
    try:
        schema.check(document)
    except SchemaViolation as err:
        raise InputError(file, str(err)) from None
