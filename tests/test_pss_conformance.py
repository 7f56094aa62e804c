"""Upstream pod-security-admission conformance: every fixture pod must be judged as upstream judges it.

The fixtures live outside the repository (../shared/conformance/psa, or $TRACER_PSA_FIXTURES) and
are read in place: `{baseline,restricted}/v1.N/{pass,fail}/<checkid><n>.yaml`. A pass pod must be
allowed at that level and version; a fail pod denied, with the substring expectations.json gives
for its check id (default: the check id itself) in the message.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tracer.kube import pss

FIXTURES = Path(os.environ.get("TRACER_PSA_FIXTURES")
                or Path(__file__).resolve().parents[1].parent / "shared/conformance/psa")


def _version_dirs() -> list[Path]:
    if not FIXTURES.is_dir():
        return []
    dirs = [d for level in ("baseline", "restricted") for d in (FIXTURES / level).glob("v1.*") if d.is_dir()]
    return sorted(dirs, key=lambda d: (d.parent.name, int(d.name.split(".")[1])))


@lru_cache(maxsize=None)
def _pod(text: str) -> dict:
    # Most fixtures repeat unchanged across versions: parse each distinct file once.
    return YAML(typ="safe", pure=True).load(text)


@lru_cache(maxsize=1)
def _expected_substrings() -> dict:
    return json.loads((FIXTURES / "expectations.json").read_text())


def _problem(fixture: Path, level: str, version: str) -> str | None:
    pod = _pod(fixture.read_text())
    evaluation = pss.evaluate(pod.get("metadata"), pod.get("spec"), level, version)
    if fixture.parent.name == "pass":
        return None if evaluation.allowed else f"pass/{fixture.name} denied: {evaluation.message}"
    check_id = re.sub(r"\d+$", "", fixture.stem)
    expected = _expected_substrings().get(check_id, check_id)
    if evaluation.allowed:
        return f"fail/{fixture.name} allowed"
    if expected not in evaluation.message:
        return f"fail/{fixture.name} message lacks {expected!r}: {evaluation.message}"
    return None


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no PSA fixtures at {FIXTURES}")
@pytest.mark.parametrize("directory", _version_dirs(), ids=lambda d: f"{d.parent.name}-{d.name}")
def test_fixtures_agree_with_upstream(directory: Path):
    level, version = directory.parent.name, directory.name
    fixtures = sorted(directory.glob("*/*.yaml"))
    assert fixtures, f"no fixtures under {directory}"
    problems = [p for f in fixtures if (p := _problem(f, level, version))]
    assert not problems, f"{level}:{version}: {len(problems)} of {len(fixtures)} disagree:\n" + "\n".join(problems)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no PSA fixtures at {FIXTURES}")
def test_fixture_versions_reach_the_newest_policy_version():
    newest = max(int(d.name.split(".")[1]) for d in _version_dirs())
    assert pss.NEWEST_MINOR == newest, "the registry and the fixtures disagree on the newest policy version"
