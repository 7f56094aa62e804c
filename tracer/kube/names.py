"""Kubernetes name rules (k8s.io/apimachinery/pkg/util/validation), worded as upstream words them."""

from __future__ import annotations

import re

DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*"
DNS1123_LABEL_MAX, DNS1123_SUBDOMAIN_MAX = 63, 253
_LABEL_RE = re.compile(f"^{DNS1123_LABEL}$")
_SUBDOMAIN_RE = re.compile(f"^{DNS1123_SUBDOMAIN}$")


def dns1123_label_problems(value: str) -> list[str]:
    """apimachinery IsDNS1123Label, which ValidateNamespaceName applies."""
    return _problems(
        value,
        DNS1123_LABEL_MAX,
        _LABEL_RE,
        (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
            f"regex used for validation is '{DNS1123_LABEL}')"
        ),
    )


def dns1123_subdomain_problems(value: str) -> list[str]:
    """apimachinery IsDNS1123Subdomain, which NameIsDNSSubdomain applies."""
    return _problems(
        value,
        DNS1123_SUBDOMAIN_MAX,
        _SUBDOMAIN_RE,
        (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character (e.g. 'example.com', "
            f"regex used for validation is '{DNS1123_SUBDOMAIN}')"
        ),
    )


def _problems(value: str, max_length: int, pattern: re.Pattern, format_error: str) -> list[str]:
    """Upstream's two checks, in its order: the length, then the format."""
    problems = []
    if len(value) > max_length:
        problems.append(f"must be no more than {max_length} characters")
    if not pattern.match(value):
        problems.append(format_error)
    return problems
