"""Writing Kubernetes YAML: one configuration for every object and manifest the tool writes.

New objects (namespaces, admission configuration, SeccompProfiles) and edited manifests
(`k8s harden`, which keeps comments, quotes and key order) go through the same round-trip
writer: block style, never re-wrapped, sequences indented the way the input indents them.
"""

from __future__ import annotations

import io
import re

from ruamel.yaml import YAML


def round_trip_yaml(text: str = "") -> YAML:
    """A round-trip YAML that writes sequences indented the way `text` indents them."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long strings
    mapping, offset = guess_indentation(text)
    yaml.indent(mapping=mapping, sequence=mapping + offset, offset=offset)
    return yaml


def guess_indentation(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset) from the first block sequence under a key.

    Kubernetes manifests come in two styles: `- ` level with the parent key (kubectl's
    output) or indented under it (most hand-written and Helm-rendered files).
    """
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    mapping = 2
    for parent, child in zip(lines, lines[1:]):
        if not re.match(r"^\s*[^\s-][^:]*:\s*$", parent):
            continue
        parent_indent = len(parent) - len(parent.lstrip())
        child_indent = len(child) - len(child.lstrip())
        if child.lstrip().startswith("- "):
            return mapping, max(child_indent - parent_indent, 0)
        if child_indent > parent_indent:
            mapping = child_indent - parent_indent
    return mapping, 0


def to_yaml(obj) -> str:
    """One object as block-style YAML, keys in the order given."""
    buffer = io.StringIO()
    round_trip_yaml().dump(obj, buffer)
    return buffer.getvalue()
