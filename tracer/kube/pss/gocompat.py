"""Reading a pod as upstream's Go code does, and wording details as it does: what
policy/helpers.go and policy/visitor.go of pod-security-admission provide.

A pod here is a plain dict as decoded from YAML or JSON; a missing field or a null reads as
Go's zero value (`lookup`, `go_string`), containers are visited in upstream's order, and
values are quoted as Go's %q quotes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

Forbidden = tuple[str, str]  # a check's finding: (reason, detail)
CheckFn = Callable[[dict, dict], "Forbidden | None"]  # (pod metadata, pod spec) -> finding


def lookup(obj, *keys):
    """obj[k1][k2]... or None when any step is missing or not a mapping."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def containers(spec: dict) -> Iterator[dict]:
    """Init containers, containers, then ephemeral containers (upstream visitContainers)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                yield container


def volumes(spec: dict) -> list[dict]:
    return [v for v in spec.get("volumes") or [] if isinstance(v, dict)]


def go_string(value) -> str:
    """A string field as Go reads it: unset (null) is ""."""
    return value if isinstance(value, str) else ""


def name_of(obj: dict) -> str:
    return go_string(obj.get("name"))


def pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def join_quoted(items) -> str:
    return ", ".join(f'"{item}"' for item in items)


GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """Go's %q (strconv.Quote): printable runes as they are, others escaped."""
    out = []
    for char in text:
        if char in GO_ESCAPES:
            out.append(GO_ESCAPES[char])
        elif char == " " or char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif 0xD800 <= ord(char) <= 0xDFFF:  # not valid UTF-8: Go sees the replacement rune
            out.append("\ufffd")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def named(noun: str, names: list[str]) -> str:
    """`container "a"` / `containers "a", "b"`."""
    return f"{pluralize(noun, noun + 's', len(names))} {join_quoted(names)}"


def pod_and_containers_where(spec: dict, bad_context) -> list[str]:
    """["pod", 'containers "a", "b"'] for the pod and the containers whose securityContext
    matches `bad_context`, in upstream's order, for "... must not set ..." details."""
    setters = ["pod"] if bad_context(lookup(spec, "securityContext") or {}) else []
    bad = [name_of(c) for c in containers(spec) if bad_context(lookup(c, "securityContext") or {})]
    if bad:
        setters.append(named("container", bad))
    return setters


def pod_or_container_setting(
    spec: dict, reason: str, read, *, is_bad, covers, must_not_set, must_set: str
) -> Forbidden | None:
    """A setting a pod may make for all its containers (runAsNonRoot, seccompProfile), judged
    and worded as upstream does: first who sets a bad value ("pod and containers "a", "b"
    must not set ..."), then the containers that leave it unset while the pod sets no value
    that covers them ("pod or container "c" must set ...")."""
    setters, bad_values = [], []
    pod_value = read(spec)
    if pod_value is not None and is_bad(pod_value):
        setters.append("pod")
        bad_values.append(pod_value)
    pod_covers = pod_value is not None and covers(pod_value)
    explicitly_bad, unset = [], []
    for container in containers(spec):
        value = read(container)
        if value is None:
            if not pod_covers:
                unset.append(name_of(container))
        elif is_bad(value):
            explicitly_bad.append(name_of(container))
            bad_values.append(value)
    if explicitly_bad:
        setters.append(named("container", explicitly_bad))
    if setters:
        return reason, f"{' and '.join(setters)} must not set {must_not_set(bad_values)}"
    if unset:
        return reason, f"pod or {named('container', unset)} must set {must_set}"
    return None


def user_namespace_pod(spec: dict) -> bool:
    """hostUsers: false relaxes some checks from v1.35 (KEP-127)."""
    return spec.get("hostUsers") is False


def windows_pod(spec: dict) -> bool:
    return lookup(spec, "os", "name") == "windows"
