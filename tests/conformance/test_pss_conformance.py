"""Upstream pod-security-admission conformance: every fixture pod must be judged as upstream judges it.

The fixtures ship in the repository, tests/data/psa-conformance.tar.xz (source and date in
tests/data/psa-conformance.README.md), and are read from the archive directly:
`{baseline,restricted}/v1.N/{pass,fail}/<checkid><n>.yaml`. A pass pod must be allowed at that
level and version; a fail pod denied, with the substring expectations.json gives for its check
id (default: the check id itself) in the message. Each pod goes through the same reader as
`tracer pss check` (YAML 1.1 and the API-type checks), then the evaluator.

Nothing here can skip: a missing or incomplete archive is a failure.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections import defaultdict
from functools import lru_cache

import pytest

from support.paths import TEST_DATA
from tracer.kube import pss, yaml11
from tracer.kube.manifests import LoadResult, classify_documents

ARCHIVE = TEST_DATA / "psa-conformance.tar.xz"
EXPECTED_FILES = 4537
MEMBER = re.compile(r"^(baseline|restricted)/(v1\.\d+)/(pass|fail)/([a-z_]+\d*)\.yaml$")


@lru_cache(maxsize=1)
def _archive() -> tuple[dict, dict]:
    """{(level, version): [(outcome, stem, text)]} and expectations.json, read once."""
    fixtures: dict[tuple[str, str], list] = defaultdict(list)
    expectations = None
    with tarfile.open(ARCHIVE, "r:xz") as archive:
        for member in archive:
            if not member.isfile():
                continue
            text = archive.extractfile(member).read().decode()
            if member.name == "expectations.json":
                expectations = json.loads(text)
            elif match := MEMBER.match(member.name):
                level, version, outcome, stem = match.groups()
                fixtures[(level, version)].append((outcome, stem, text))
    assert expectations is not None, f"{ARCHIVE} has no expectations.json"
    return dict(fixtures), expectations


def _directories() -> list:
    """The (level, version) pairs to test; a failing placeholder when the archive is missing,
    so that the parametrised test fails instead of being skipped for want of parameters."""
    if not ARCHIVE.is_file():
        return [("missing", "archive")]
    return sorted(_archive()[0], key=lambda lv: (lv[0], int(lv[1].split(".")[1])))


@lru_cache(maxsize=None)
def _pod(text: str, stem: str):
    # Most fixtures repeat unchanged across versions: read each distinct file once.
    loaded = LoadResult()
    classify_documents(f"{stem}.yaml", yaml11.load_yaml(text, f"{stem}.yaml"), loaded)
    (obj,) = loaded.objects
    assert obj.kind == "Pod" and obj.name == stem
    return obj


def _problem(level: str, version: str, outcome: str, stem: str, text: str) -> str | None:
    pod = _pod(text, stem)
    evaluation = pss.evaluate(pod.pod_metadata, pod.pod_spec, level, version)
    if outcome == "pass":
        return None if evaluation.allowed else f"pass/{stem} denied: {evaluation.message}"
    check_id = re.sub(r"\d+$", "", stem)
    expected = _archive()[1].get(check_id, check_id)
    if evaluation.allowed:
        return f"fail/{stem} allowed"
    if expected not in evaluation.message:
        return f"fail/{stem} message lacks {expected!r}: {evaluation.message}"
    return None


def test_the_archive_holds_every_upstream_fixture():
    assert ARCHIVE.is_file(), f"{ARCHIVE} is missing: the conformance fixtures ship with the repository"
    fixtures, _ = _archive()
    assert sum(len(files) for files in fixtures.values()) == EXPECTED_FILES
    counts = {
        (level, outcome): sum(
            1 for (lvl, _), files in fixtures.items() if lvl == level for o, _, _ in files if o == outcome
        )
        for level in ("baseline", "restricted")
        for outcome in ("pass", "fail")
    }
    assert counts == {
        ("baseline", "pass"): 433,
        ("baseline", "fail"): 1122,
        ("restricted", "pass"): 618,
        ("restricted", "fail"): 2364,
    }


@pytest.mark.parametrize("level, version", _directories(), ids=lambda value: value)
def test_fixtures_agree_with_upstream(level, version):
    assert ARCHIVE.is_file(), f"{ARCHIVE} is missing"
    fixtures = _archive()[0][(level, version)]
    assert fixtures, f"no fixtures for {level}:{version}"
    problems = [p for f in fixtures if (p := _problem(level, version, *f))]
    assert not problems, f"{level}:{version}: {len(problems)} of {len(fixtures)} disagree:\n" + "\n".join(problems)


def test_fixture_versions_reach_the_newest_policy_version():
    assert ARCHIVE.is_file(), f"{ARCHIVE} is missing"
    newest = max(int(version.split(".")[1]) for _, version in _archive()[0])
    assert pss.NEWEST_MINOR == newest, "the registry and the fixtures disagree on the newest policy version"
