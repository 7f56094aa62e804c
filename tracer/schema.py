"""A small JSON Schema validator for the schemas this project ships (no dependency).

It compiles a schema once into plain Python closures and stops at the first violation,
which it reports as a JSON path and a problem (`snapshots[2].syscalls[7][1]: 999 is above the
maximum 511 (syscall number)`), so a bad input is one line naming where it is wrong.

It understands the keywords those schemas use, with draft 2020-12 meaning: `$ref` (local
JSON pointers), `type`, `const`, `enum`, `properties`, `required`, `additionalProperties`,
`propertyNames`, `minProperties`, `maxProperties`, `prefixItems`, `items`, `minItems`,
`maxItems`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`,
`maxLength`, `pattern`, `allOf`, `if`/`then`/`else`; annotations are ignored. A schema using any
other keyword is refused when it is compiled, so nothing in it is silently not checked.
One deliberate difference from the standard: an "integer" must be written without a
fraction (5, not 5.0), as every writer of these files does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

import orjson

Check = Callable[[object, tuple], None]

ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "const",
        "enum",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "prefixItems",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "allOf",
        "if",
        "then",
        "else",
    }
)


class SchemaViolation(ValueError):
    """Where a document breaks its schema (a path of keys and indices) and how."""

    def __init__(self, path: tuple, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{format_path(path)}: {problem}")


def format_path(path: tuple) -> str:
    """("snapshots", 2, "syscalls") -> snapshots[2].syscalls"""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{orjson.dumps(part).decode()}]"
    return text or "(the document)"


def describe(value) -> str:
    """A value as an error message names it: the string "false", the integer 5, a list."""
    if isinstance(value, bool) or value is None:
        return orjson.dumps(value).decode()
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {orjson.dumps(shown).decode()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    return "a list" if isinstance(value, list) else "an object"


def json_type(value) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def json_equal(a, b) -> bool:
    """Equality as JSON means it: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


TYPE_WORDS = {
    "null": ["null"],
    "boolean": ["true", "false"],
    "integer": ["an integer"],
    "number": ["a number"],
    "string": ["a string"],
    "array": ["a list"],
    "object": ["an object"],
}


def one_of_words(words: list[str]) -> str:
    """["true", "false", "null"] -> "true, false or null" """
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _type_matches(value, wanted: str) -> bool:
    kind = json_type(value)
    return kind == wanted or (wanted == "number" and kind == "integer")


class Schema:
    """A compiled schema document; `check(doc)` or `check(doc, "#/$defs/x")` raise SchemaViolation."""

    def __init__(self, document: dict):
        self.document = document
        self._compiled: dict[str, Check] = {}

    def check(self, value, pointer: str = "#", path: tuple = ()) -> None:
        self.at(pointer)(value, path)

    def at(self, pointer: str) -> Check:
        if pointer not in self._compiled:
            self._compiled[pointer] = self._compile(self._resolve(pointer))
        return self._compiled[pointer]

    def _resolve(self, pointer: str):
        if not pointer.startswith("#"):
            raise ValueError(f"only local references are supported, not {pointer!r}")
        node = self.document
        for token in filter(None, pointer[1:].split("/")):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        return node

    # ------------------------------------------------------------ compiling

    def _compile(self, node) -> Check:
        if node is True or node == {}:
            return _accept
        if node is False:
            return _refuse
        unknown = set(node) - KEYWORDS - ANNOTATIONS
        if unknown:
            raise ValueError(f"schema keyword(s) {sorted(unknown)} are not supported by tracer.schema")
        title = node.get("title")
        checks = [
            c
            for c in (
                self._ref(node),
                _type(node, title),
                _const_enum(node, title),
                self._object(node, title),
                self._array(node, title),
                _number(node, title),
                _string(node, title),
                self._combinators(node),
            )
            if c is not None
        ]
        if len(checks) == 1:
            return checks[0]

        def check_all(value, path):
            for check in checks:
                check(value, path)

        return check_all

    def _ref(self, node) -> Check | None:
        if "$ref" not in node:
            return None
        pointer = node["$ref"]
        # Resolved at first use, so a schema may refer to itself.
        return lambda value, path: self.at(pointer)(value, path)

    def _object(self, node, title) -> Check | None:
        keys = {"properties", "required", "additionalProperties", "propertyNames", "minProperties", "maxProperties"}
        if not keys & set(node):
            return None
        properties = {name: self._compile(sub) for name, sub in node.get("properties", {}).items()}
        required = list(node.get("required", ()))
        extra = node.get("additionalProperties", True)
        extra_check = None if extra is True else (None if extra is False else self._compile(extra))
        names_check = self._compile(node["propertyNames"]) if "propertyNames" in node else None
        low, high = node.get("minProperties", 0), node.get("maxProperties", math.inf)

        def check_object(value, path):
            if not isinstance(value, dict):
                return
            if not low <= len(value) <= high:
                raise SchemaViolation(path, _count_problem(len(value), low, high, "keys", title))
            missing = [name for name in required if name not in value]
            if len(missing) == 1:
                raise SchemaViolation(path + (missing[0],), "missing (required)")
            if missing:
                raise SchemaViolation(path, f"missing {', '.join(missing)} (required)")
            for name, item in value.items():
                if names_check is not None:
                    names_check(name, path + (name,))
                if name in properties:
                    properties[name](item, path + (name,))
                elif extra is False:
                    raise SchemaViolation(path + (name,), f"unknown field (expected one of {', '.join(properties)})")
                elif extra_check is not None:
                    extra_check(item, path + (name,))

        return check_object

    def _array(self, node, title) -> Check | None:
        if not {"prefixItems", "items", "minItems", "maxItems"} & set(node):
            return None
        prefix = [self._compile(sub) for sub in node.get("prefixItems", ())]
        rest = node.get("items", True)
        rest_check = None if rest is True or rest is False else self._compile(rest)
        low = node.get("minItems", 0)
        high = min(node.get("maxItems", math.inf), len(prefix) if rest is False else math.inf)
        bounds = _integer_row_bounds(node, self)

        def check_array(value, path):
            if not isinstance(value, list):
                return
            if not low <= len(value) <= high:
                raise SchemaViolation(path, _count_problem(len(value), low, high, "items", title))
            if bounds is not None and _row_within(value, bounds):
                return  # the fast path: a row of integers, all in range
            for index, item in enumerate(value):
                if index < len(prefix):
                    prefix[index](item, path + (index,))
                elif rest_check is not None:
                    rest_check(item, path + (index,))

        return check_array

    def _combinators(self, node) -> Check | None:
        parts = [self._compile(sub) for sub in node.get("allOf", ())]
        if "if" in node:
            condition = self._compile(node["if"])
            then = self._compile(node.get("then", True))
            otherwise = self._compile(node.get("else", True))

            def check_if(value, path):
                try:
                    condition(value, path)
                except SchemaViolation:
                    otherwise(value, path)
                else:
                    then(value, path)

            parts.append(check_if)
        if not parts:
            return None

        def check_parts(value, path):
            for part in parts:
                part(value, path)

        return check_parts


def _accept(value, path) -> None:
    return None


def _refuse(value, path) -> None:
    raise SchemaViolation(path, "not allowed here")


def _with_title(problem: str, title: str | None) -> str:
    return f"{problem} ({title})" if title else problem


def _count_problem(count: int, low, high, unit: str, title) -> str:
    if low == high:
        return _with_title(f"expected {low} {unit}, got {count}", title)
    if count < low:
        return _with_title(f"expected at least {low} {unit}, got {count}", title)
    return _with_title(f"expected at most {high:,} {unit}, got {count:,}", title)


def _type(node, title) -> Check | None:
    if "type" not in node:
        return None
    wanted = node["type"] if isinstance(node["type"], list) else [node["type"]]
    words = one_of_words([word for w in wanted for word in TYPE_WORDS[w]])

    def check_type(value, path):
        if not any(_type_matches(value, w) for w in wanted):
            raise SchemaViolation(path, _with_title(f"expected {words}, got {describe(value)}", title))

    return check_type


def _const_enum(node, title) -> Check | None:
    if "const" in node:
        options = [node["const"]]
    elif "enum" in node:
        options = list(node["enum"])
    else:
        return None
    shown = ", ".join(orjson.dumps(o).decode() for o in options[:12]) + (", ..." if len(options) > 12 else "")

    def check_options(value, path):
        if not any(json_equal(value, option) for option in options):
            expected = f"expected {shown}" if len(options) == 1 else f"expected one of {shown}"
            raise SchemaViolation(path, _with_title(f"{expected}, got {describe(value)}", title))

    return check_options


def _number(node, title) -> Check | None:
    low, high = node.get("minimum"), node.get("maximum")
    above, below = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if low is None and high is None and above is None and below is None:
        return None

    def check_number(value, path):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        if low is not None and value < low:
            raise SchemaViolation(path, _with_title(f"{_num(value)} is below the minimum {low}", title))
        if high is not None and value > high:
            raise SchemaViolation(path, _with_title(f"{_num(value)} is above the maximum {high}", title))
        if above is not None and value <= above:
            raise SchemaViolation(path, _with_title(f"{_num(value)} must be above {above}", title))
        if below is not None and value >= below:
            raise SchemaViolation(path, _with_title(f"{_num(value)} must be below {below}", title))

    return check_number


def _num(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _string(node, title) -> Check | None:
    low, high = node.get("minLength", 0), node.get("maxLength", math.inf)
    pattern = re.compile(node["pattern"]) if "pattern" in node else None
    if low == 0 and high == math.inf and pattern is None:
        return None

    def check_string(value, path):
        if not isinstance(value, str):
            return
        if not low <= len(value) <= high:
            raise SchemaViolation(path, _with_title(_count_problem(len(value), low, high, "characters", None), title))
        if pattern is not None and not pattern.search(value):
            raise SchemaViolation(path, _with_title(f"{describe(value)} does not match {pattern.pattern}", title))

    return check_string


def _integer_row_bounds(node, schema: Schema) -> list[tuple[int, int]] | None:
    """(low, high) per position when the array is a fixed row of bounded integers, else None."""
    if node.get("items", True) is not False or not node.get("prefixItems"):
        return None
    bounds = []
    for sub in node["prefixItems"]:
        while isinstance(sub, dict) and set(sub) - ANNOTATIONS == {"$ref"}:
            sub = schema._resolve(sub["$ref"])
        if (
            not isinstance(sub, dict)
            or sub.get("type") != "integer"
            or set(sub) - ANNOTATIONS - {"type", "minimum", "maximum"}
        ):
            return None
        bounds.append((sub.get("minimum", -math.inf), sub.get("maximum", math.inf)))
    return bounds


def _row_within(row: list, bounds) -> bool:
    if len(row) != len(bounds):
        return False
    for value, (low, high) in zip(row, bounds):
        if value.__class__ is not int or not low <= value <= high:
            return False
    return True


@cache
def load_schema(path: Path) -> Schema:
    return Schema(orjson.loads(Path(path).read_bytes()))
