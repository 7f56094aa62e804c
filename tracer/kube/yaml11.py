"""Read manifests the way Kubernetes reads them, within fixed bounds.

kubectl and the API server turn YAML into JSON with sigs.k8s.io/yaml, which parses it with
go-yaml v2: YAML 1.1 scalars. So `privileged: yes`, `hostNetwork: on` and `hostPID: y` are
booleans, `0755` is octal, `0x1F` hex, `1_000` a thousand, `.inf` a float (that JSON cannot
carry, so kubectl refuses it). A YAML 1.2 reader (ruamel's default) takes the first three for
strings; judged that way a privileged pod passes as restricted. `load_yaml` resolves every
plain scalar exactly as go-yaml v2's `resolve()` does, then applies sigs.k8s.io/yaml's
conversion to JSON (map keys become strings: true/false, decimal integers; a float that is
a whole number travels as an integer), so the values are the ones the API server decodes.

Aliases and merge keys (`<<`) are followed as go-yaml v2 follows them (a merge sets its keys
in order, later ones win). A key written twice in one mapping is refused rather than
silently resolved.

Bounds, far past anything a real manifest needs, keep hostile input from costing more than
its size: MAX_BYTES per file, MAX_DEPTH levels of nesting (counted through aliases),
MAX_ALIAS_NODES nodes added by alias expansion per document (a 451-byte "billion laughs"
would add 10^9), numbers of at most MAX_NUMBER_LENGTH characters. Every problem is an
`InputError` naming the file, the document and the line; never a traceback.

`load_json` applies the same rules to a JSON file (one object), as kubectl passes JSON on.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from tracer.errors import InputError

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 100
MAX_ALIAS_NODES = 10_000
MAX_NUMBER_LENGTH = 100


@dataclass
class Document:
    number: int  # 1-based position in the stream
    value: object  # None for an empty document
    uses_aliases: bool  # aliases or merge keys appear in it


def read_text(path: str | Path) -> str:
    """A manifest file's text: at most MAX_BYTES of UTF-8 (a leading BOM dropped)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(path, "no such file or directory") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory") from None
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from None
    if len(data) > MAX_BYTES:
        raise InputError(path, f"larger than {MAX_BYTES // (1024 * 1024)} MiB: not a manifest this tool reads")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text") from None


def _check_size(text: str, source) -> None:
    if len(text) > MAX_BYTES:  # characters; a real check on bytes happens in read_text
        raise InputError(source, f"larger than {MAX_BYTES // (1024 * 1024)} MiB: not a manifest this tool reads")


# --- go-yaml v2 scalar resolution (resolve.go) -------------------------------------------

STR, BOOL, INT, FLOAT, NULL, TIMESTAMP, BINARY, MERGE = (
    "tag:yaml.org,2002:" + name for name in ("str", "bool", "int", "float", "null", "timestamp", "binary", "merge")
)
_RESOLVABLE = {STR, BOOL, INT, FLOAT, NULL, TIMESTAMP}

_HINTS = {**dict.fromkeys("+-", "S"), **dict.fromkeys("0123456789", "D"), **dict.fromkeys("yYnNtTfFoO~", "M"), ".": "."}
_RESOLVE_MAP: dict[str, tuple[str, object]] = {}
for _values, _resolved in (
    (("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), (BOOL, True)),
    (("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), (BOOL, False)),
    (("", "~", "null", "Null", "NULL"), (NULL, None)),
    ((".nan", ".NaN", ".NAN"), (FLOAT, math.nan)),
    ((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), (FLOAT, math.inf)),
    (("-.inf", "-.Inf", "-.INF"), (FLOAT, -math.inf)),
    (("<<",), (MERGE, "<<")),
):
    _RESOLVE_MAP.update(dict.fromkeys(_values, _resolved))

_YAML_STYLE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
# Go's ParseFloat on a string starting with '.': digits, '_' only between digits, exponent.
_DOT_FLOAT = re.compile(r"^\.[0-9]+(_[0-9]+)*([eE][-+]?[0-9]+(_[0-9]+)*)?$")
_DIGITS = {
    2: re.compile(r"^[01]*$"),
    8: re.compile(r"^[0-7]*$"),
    10: re.compile(r"^[0-9]+$"),
    16: re.compile(r"^[0-9a-fA-F]+$"),
}
_INT_SYNTAX = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oObB][0-9]+|[0-9]+)$")
_TIMESTAMP = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"([Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]{1,9})?(Z|[-+][0-9]{2}:[0-9]{2})?)?$"
)
_SURROGATES = re.compile("[\ud800-\udfff]")

INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


class _Refused(Exception):
    """A scalar or structure Kubernetes would not accept, or one past our bounds."""


def _go_parse_uint(text: str) -> int | None:
    """strconv.ParseUint(text, 0, 64) on a string without underscores."""
    if not text:
        return None
    base, digits = 10, text
    if text[0] == "0":
        prefix = text[1:2].lower()
        if len(text) >= 3 and prefix in ("b", "o", "x"):
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], text[2:]
        else:
            base, digits = 8, text[1:]
    if digits and not _DIGITS[base].match(digits):
        return None
    value = int(digits, base) if digits else 0
    return value if value <= UINT64_MAX else None


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64)."""
    negative = text[:1] == "-"
    magnitude = _go_parse_uint(text[1:] if text[:1] in ("+", "-") else text)
    if magnitude is None:
        return None
    value = -magnitude if negative else magnitude
    return value if INT64_MIN <= value <= INT64_MAX else None


def _long_number(text: str) -> None:
    if len(text) > MAX_NUMBER_LENGTH and (
        _INT_SYNTAX.match(text) or _YAML_STYLE_FLOAT.match(text) or _DOT_FLOAT.match(text)
    ):
        raise _Refused(f"number longer than {MAX_NUMBER_LENGTH} characters")


def resolve(tag: str, text: str) -> tuple[str, object]:
    """go-yaml v2 resolve(): the tag and value of a scalar; tag "" means untagged plain."""
    if tag not in _RESOLVABLE and tag != "":
        return tag, text
    hint = _HINTS.get(text[0]) if text else "N"
    if hint and tag != STR:
        if text in _RESOLVE_MAP:
            return _RESOLVE_MAP[text]
        if hint == ".":
            _long_number(text)
            if _DOT_FLOAT.match(text):
                value = float(text.replace("_", ""))
                if not math.isinf(value):  # Go: ErrRange, so not a float
                    return FLOAT, value
        elif hint in "DS":
            if tag in ("", TIMESTAMP) and _TIMESTAMP.match(text):
                return TIMESTAMP, text
            plain = text.replace("_", "")
            _long_number(plain)
            if (value := _go_parse_int(plain)) is not None:
                return INT, value
            if (value := _go_parse_uint(plain)) is not None:
                return INT, value
            if _YAML_STYLE_FLOAT.match(plain):
                value = float(plain)
                if not math.isinf(value):
                    return FLOAT, value
    return STR, text


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _scalar_value(event: ScalarEvent):
    """The value go-yaml v2 decodes a scalar event to, before the JSON conversion."""
    text, tag = event.value, event.tag
    if tag is None or tag == "":
        if event.style is not None:  # quoted or block scalars are strings
            return text
        return resolve("", text)[1]
    tag = str(tag)
    if tag == "!":  # the non-specific tag: a string
        return text
    if tag == BINARY:
        try:
            data = text.replace("\r", "").replace("\n", "")  # Go's decoder skips line breaks only
            return base64.b64decode(data.encode("ascii", "strict"), validate=True).decode("utf-8", "replace")
        except (binascii.Error, UnicodeEncodeError):
            raise _Refused("!!binary value contains invalid base64 data") from None
    if tag not in _RESOLVABLE:  # application tags (!foo) leave the text as a string
        return text
    rtag, value = resolve(tag, text)
    if rtag == tag or tag == STR:
        return text if tag == STR else value
    if tag == FLOAT and rtag == INT:
        return float(value)
    raise _Refused(f"cannot decode {_short(rtag)} `{text}` as a {_short(tag)}")


def _json_number(value: float):
    """A float as it reaches the API server: sigs.k8s.io/yaml marshals it to JSON, where a
    whole number is written without a fraction (and so decodes as an integer)."""
    if math.isnan(value) or math.isinf(value):
        shown = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
        raise _Refused(f"{shown} cannot be represented in JSON, so Kubernetes cannot read it")
    if value == int(value) and abs(value) < 1e21:  # Go's 'f' format: the shortest digits
        return int(Decimal(repr(value)))
    return value


def _json_value(value):
    if isinstance(value, float):
        return _json_number(value)
    if isinstance(value, str) and _SURROGATES.search(value):
        return _SURROGATES.sub("\ufffd", value)  # Go's JSON encoder replaces them
    return value


def _go_float_key(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32), as sigs.k8s.io/yaml writes float keys."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    single = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(0, 9):
        text = f"{single:.{digits}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, exponent = text.split("e")
    exponent = int(exponent)
    mantissa = mantissa.rstrip("0").rstrip(".")
    if exponent < -4 or exponent >= 6:  # Go: %e past these exponents when precision is shortest
        sign = "-" if exponent < 0 else "+"
        return f"{mantissa}e{sign}{abs(exponent):02d}"
    return format(Decimal(f"{mantissa}e{exponent}"), "f")


def _json_key(value) -> str:
    """sigs.k8s.io/yaml's conversion of a decoded map key to a JSON object key."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float_key(value)
    if isinstance(value, str):
        return _json_value(value)
    if value is None:
        raise _Refused("a null mapping key cannot be represented in JSON")
    raise _Refused("mapping keys must be scalars")


# --- the composer ---------------------------------------------------------------------------

_MERGE = object()


class _Node:
    __slots__ = ("value", "size", "height")

    def __init__(self, value, size: int, height: int):
        self.value, self.size, self.height = value, size, height


class _Frame:
    __slots__ = ("value", "is_map", "anchor", "key", "has_key", "explicit", "size", "height")

    def __init__(self, value, is_map: bool, anchor):
        self.value, self.is_map, self.anchor = value, is_map, anchor
        self.key, self.has_key, self.explicit = None, False, set()
        self.size, self.height = 1, 1


def _merge(target: dict, value) -> None:
    """go-yaml v2 decoder.merge: a mapping, or a list of them (earlier ones win)."""
    if isinstance(value, dict):
        target.update(value)
        return
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        for item in reversed(value):
            target.update(item)
        return
    raise _Refused("map merge requires map or sequence of maps as the value")


class _Composer:
    def __init__(self):
        self.documents: list[Document] = []
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Node] = {}
        self.alias_nodes = 0
        self.uses_aliases = False

    def start_document(self):
        self.stack, self.anchors, self.alias_nodes, self.uses_aliases = [], {}, 0, False
        self.root: _Node | None = None

    def end_document(self):
        self.documents.append(
            Document(len(self.documents) + 1, self.root.value if self.root else None, self.uses_aliases)
        )

    def push(self, value, is_map: bool, anchor) -> None:
        if len(self.stack) + 1 > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
        if self.stack and self.stack[-1].is_map and not self.stack[-1].has_key:
            raise _Refused("mapping keys must be scalars")
        self.stack.append(_Frame(value, is_map, anchor))

    def pop(self) -> None:
        frame = self.stack.pop()
        if frame.is_map and frame.has_key:
            raise _Refused("mapping has a key without a value")
        self.add(_Node(frame.value, frame.size, frame.height), frame.anchor)

    def alias(self, name: str) -> None:
        node = self.anchors.get(name)
        if node is None:
            raise _Refused(f"unknown anchor '{name}' referenced (or an anchor that contains itself)")
        self.uses_aliases = True
        self.alias_nodes += node.size
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise _Refused(f"aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)")
        if len(self.stack) + node.height > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels (through an alias)")
        self.add(node, None, from_alias=True)

    def scalar(self, event: ScalarEvent) -> None:
        is_key = bool(self.stack) and self.stack[-1].is_map and not self.stack[-1].has_key
        if is_key and event.value == "<<" and ((event.tag is None and event.style is None) or str(event.tag) == MERGE):
            self.uses_aliases = True
            self.add(_Node(_MERGE, 1, 0), event.anchor)
            return
        self.add(_Node(_scalar_value(event), 1, 0), event.anchor)

    def add(self, node: _Node, anchor, from_alias: bool = False) -> None:
        if anchor is not None:
            self.anchors[anchor] = node
        if not self.stack:
            self.root = _Node(_finish(node.value), node.size, node.height)
            return
        frame = self.stack[-1]
        frame.size += node.size
        frame.height = max(frame.height, node.height + 1)
        if not frame.is_map:
            frame.value.append(_finish(node.value))
        elif not frame.has_key:
            frame.key = node.value if node.value is _MERGE else _json_key(node.value)
            frame.has_key = True
        else:
            key, frame.key, frame.has_key = frame.key, None, False
            if key is _MERGE:
                _merge(frame.value, node.value)
            elif key in frame.explicit:
                raise _Refused(f"duplicate key '{key}' in one mapping")
            else:
                frame.explicit.add(key)
                frame.value[key] = _finish(node.value)


def _finish(value):
    if value is _MERGE:  # `<<` used as a value
        return "<<"
    return _json_value(value) if not isinstance(value, (dict, list)) else value


def load_yaml(text: str, source) -> list[Document]:
    """Every document in a YAML stream, with Kubernetes' values; InputError on any problem."""
    _check_size(text, source)
    composer = _Composer()
    number, line = 0, 0
    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            line = event.start_mark.line + 1 if event.start_mark is not None else line
            if isinstance(event, ScalarEvent):
                composer.scalar(event)
            elif isinstance(event, MappingStartEvent):
                composer.push({}, True, event.anchor)
            elif isinstance(event, SequenceStartEvent):
                composer.push([], False, event.anchor)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                composer.pop()
            elif isinstance(event, AliasEvent):
                composer.alias(event.anchor)
            elif isinstance(event, DocumentStartEvent):
                number += 1
                composer.start_document()
            elif isinstance(event, DocumentEndEvent):
                composer.end_document()
    except _Refused as refused:
        raise InputError(source, f"document {number}: line {line}: {refused}") from None
    except YAMLError as err:
        raise InputError(source, f"invalid YAML: {_one_line(err)}") from None
    except (RecursionError, MemoryError, ValueError, TypeError, AttributeError) as err:
        # the pure-Python scanner on input it was never meant to see
        raise InputError(source, f"invalid YAML: {type(err).__name__} near line {line}") from None
    return composer.documents


def _one_line(err: YAMLError) -> str:
    problem = getattr(err, "problem", None) or (str(err).splitlines() or ["unreadable"])[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


# --- JSON -----------------------------------------------------------------------------------


def _pairs(pairs: list) -> dict:
    result = {}
    for key, value in pairs:
        key = _json_value(key)
        if key in result:
            raise _Refused(f"duplicate key '{key}' in one object")
        result[key] = _json_value(value)
    return result


def _parse_int(text: str) -> int:
    _long_number(text)
    return int(text)


def _parse_float(text: str):
    _long_number(text)
    value = float(text)
    if math.isinf(value):
        raise _Refused(f"number {text} is out of range")
    return _json_number(value)


def _parse_constant(name: str):
    raise _Refused(f"{name} is not JSON")


def _check_json(value) -> None:
    """Bound the nesting depth; replace lone surrogates in list items (object members and
    keys had theirs replaced by `_pairs`)."""
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, list):
            node[:] = [_json_value(item) for item in node]
        children = node.values() if isinstance(node, dict) else node
        pending += [(child, depth + 1) for child in children if isinstance(child, (dict, list))]


def load_json(text: str, source) -> list[Document]:
    """A JSON file's one value as a document, with the same rules and bounds as YAML."""
    _check_size(text, source)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
        if isinstance(value, (dict, list)):
            _check_json(value)
    except _Refused as refused:
        raise InputError(source, f"invalid JSON: {refused}") from None
    except RecursionError:
        raise InputError(source, f"invalid JSON: nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as err:
        raise InputError(source, f"invalid JSON: {err}") from None
    return [Document(1, _json_value(value), False)]
