"""Fuzzing the inputs: mutated fixture traces and profiles never give a traceback or a wrong
output. Every mutation that breaks the schema (judged by the reference `jsonschema`, not by
our checker) makes show, generate, merge and diff exit 2 with one line naming the file, and
write nothing; a mutation the schema allows still never crashes. Then the cases issues 10 and
11 found, one by one, through every command that reads them.
"""

from __future__ import annotations

import copy
import functools
import json
import tempfile
from pathlib import Path

import jsonschema
import orjson
import pytest
import typer.main

from support.paths import FIXTURES, REPO
from tracer.cli import main
from tracer.profile.validate import RUNTIME_SPEC_SECCOMP
from tracer.trace.format import load_trace

V1 = REPO / "tests/data/v1"  # real version 1 recordings; the fixtures are version 2
TRACE_SCHEMA = jsonschema.Draft202012Validator(json.loads((REPO / "docs/trace.schema.json").read_text()))
SECCOMP_SCHEMA = jsonschema.Draft4Validator(json.loads(RUNTIME_SPEC_SECCOMP.read_text()))
GOOD_TRACE = FIXTURES / "python-chown.trace.json"
ROWS_KEPT = 3  # rows per list in the fuzzed copies: the reference validator is slow on whole fixtures


# ---------------------------------------------------------------- mutations


def replacements(value) -> list:
    """Values of the wrong type or out of range for where `value` was."""
    if isinstance(value, bool):
        return ["false", 0, None]
    if isinstance(value, int):
        return [str(value), True, -1, 2**64, 1.5, None]
    if isinstance(value, float):
        return [str(value), -1.0, True, None]
    if isinstance(value, str):
        return [0, True, None, ["x"]]
    if isinstance(value, list):
        return [{}, "x", 0, None, [["x"]]]
    if isinstance(value, dict):
        return ["x", 0, None, [], {**value, "bogus_field": 1}]
    return [0, "x", [], {}]


def paths(node, path=()):
    """Every path into the document, lists entered at their first and last item only."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, path + (key,))
    elif isinstance(node, list) and node:
        for index in sorted({0, len(node) - 1}):
            yield from paths(node[index], path + (index,))


def mutations(doc):
    """(description, mutated document) for every path: each wrong value, and removal."""
    for path in paths(doc):
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        values = replacements(parent[path[-1]])
        for value in values + ["<removed>"]:
            mutated = copy.deepcopy(doc)
            target = mutated
            for part in path[:-1]:
                target = target[part]
            if value == "<removed>":
                del target[path[-1]]
            else:
                target[path[-1]] = value
            yield f"{'/'.join(map(str, path))} = {value!r}", mutated


def small_copy_of(trace: Path) -> dict:
    """The trace with its first few rows only. Version 1: the same rows in every snapshot.
    Version 2: the first rows of the totals, the series' points cut to match (their new rows
    among those kept, their calls within the kept totals) and the first argument rows."""
    doc = orjson.loads(trace.read_bytes())
    if doc["version"] == 1:
        last = doc["snapshots"][-1]
        keep = {tuple(row[:2]) for row in last["syscalls"][:ROWS_KEPT]}
        keep_caps = {tuple(row[:4]) for row in last["capabilities"][:ROWS_KEPT]}
        for snap in doc["snapshots"]:
            snap["syscalls"] = [row for row in snap["syscalls"] if tuple(row[:2]) in keep]
            snap["capabilities"] = [row for row in snap["capabilities"] if tuple(row[:4]) in keep_caps]
        return doc
    totals = doc["totals"]
    totals["syscalls"] = totals["syscalls"][:ROWS_KEPT]
    totals["capabilities"] = totals["capabilities"][:ROWS_KEPT]
    keep = {tuple(row[:2]) for row in totals["syscalls"]}
    keep_caps = {tuple(row[:4]) for row in totals["capabilities"]}
    per_phase = [sum(row[2] for row in totals["syscalls"] if row[0] == phase) for phase in range(len(doc["phases"]))]
    for point in doc["snapshots"]:
        point["new_syscalls"] = [row for row in point["new_syscalls"] if tuple(row) in keep]
        point["new_capabilities"] = [row for row in point["new_capabilities"] if tuple(row) in keep_caps]
        point["calls"] = [min(calls, total) for calls, total in zip(point["calls"], per_phase)]
    doc["arguments"]["rows"] = doc["arguments"]["rows"][:ROWS_KEPT]
    return doc


# ---------------------------------------------------------------- running commands


@pytest.fixture(scope="module", autouse=True)
def cli_built_once():
    """typer builds the whole command tree on every call (14 ms, five times our own work);
    thousands of calls share one build here. main() and its exit codes are unchanged."""
    original = typer.main.get_command
    typer.main.get_command = functools.cache(original)
    yield
    typer.main.get_command = original


@pytest.fixture
def scratch(tmp_path):
    """A directory on tmpfs where there is one: thousands of small files written and synced."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="tracer-fuzz-") as directory:
        yield Path(directory)


def write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))  # the standard library: orjson refuses to write 2^64
    return path


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err


def refused(code: int, err: str, source: Path) -> str | None:
    """None when the command refused as it must: exit 2, one line, naming the file."""
    if code != 2:
        return f"exit {code}"
    if err.count("\n") != 1 or not err.startswith(f"error: {source}: "):
        return f"message {err!r}"
    return None


def trace_commands(bad: Path, out: Path, good: Path = GOOD_TRACE) -> dict[str, list[str]]:
    return {
        "show": ["show", str(bad)],
        "generate": ["generate", str(bad), "--out", str(out / "profile")],
        "merge": ["merge", str(good), str(bad), "--out", str(out / "merged.json")],
        "diff": ["diff", str(good), str(bad)],
    }


def written(out: Path) -> list[Path]:
    return list(out.iterdir()) if out.exists() else []


FUZZED_TRACES = [
    FIXTURES / "mini-nim.trace.json",
    FIXTURES / "http-server.trace.json",  # version 2
    V1 / "http-server.trace.json",
    V1 / "shell-nonroot.trace.json",
]  # version 1


@pytest.mark.parametrize("trace", FUZZED_TRACES, ids=lambda p: f"{p.parent.name}/{p.name.split('.')[0]}")
def test_mutated_traces(trace, scratch, capsys):
    tmp_path = scratch
    # merge and diff read the good trace for every mutation: its small copy, 4 times faster to load
    good = write(tmp_path / "good.json", small_copy_of(GOOD_TRACE))
    assert load_trace(good).final.syscalls.any()
    base = small_copy_of(trace)
    assert base["version"] == (1 if trace.parent == V1 else 2)
    assert TRACE_SCHEMA.is_valid(base)
    load_trace(write(tmp_path / "base.json", base))  # the small copy itself is a good trace
    if base["version"] == 2:  # its argument rows, series and totals are fuzzed too
        assert base["arguments"]["rows"] and len(base["totals"]["capabilities"]) == ROWS_KEPT
        assert any(point["new_syscalls"] for point in base["snapshots"])
    problems, invalid = [], 0
    for index, (what, doc) in enumerate(mutations(base)):
        bad, out = write(tmp_path / f"m{index}.json", doc), tmp_path / f"out{index}"
        schema_valid = TRACE_SCHEMA.is_valid(doc)
        invalid += not schema_valid
        for name, args in trace_commands(bad, out, good).items():
            code, err = run(capsys, *args)
            problem = refused(code, err, bad) if code != 0 or not schema_valid else None
            if problem:
                problems.append(f"{name} {what}: {problem}")
            if code != 0 and written(out):
                problems.append(f"{name} {what}: wrote {written(out)}")
        bad.unlink()
    assert invalid > 200
    assert not problems, "\n".join(problems[:20])


# ---------------------------------------------------------------- profiles


@pytest.fixture(scope="module")
def good_profile(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("profile") / "nim"
    assert main(["generate", str(FIXTURES / "mini-nim.trace.json"), "--out", str(directory)]) == 0
    seccomp = json.loads((directory / "seccomp.json").read_text())
    # a rule with argument conditions, so that they are fuzzed too
    seccomp["syscalls"].append(CONDITIONAL_RULE)
    (directory / "seccomp.json").write_text(json.dumps(seccomp))
    return directory


def profile_with(base: Path, tmp_path: Path, name: str, doc) -> Path:
    directory = tmp_path / "p"
    if directory.exists():
        for child in directory.iterdir():
            child.unlink()
    else:
        directory.mkdir()
    for file in ("seccomp.json", "capabilities.json", "recording.json"):
        (directory / file).write_bytes((base / file).read_bytes())
    write(directory / name, doc)
    return directory


def profile_commands(directory: Path, bad_file: Path, out: Path) -> dict[str, list[str]]:
    commands = {
        "k8s seccompprofile": ["k8s", "seccompprofile", str(directory), "--name", "nim", "--out-dir", str(out)],
        "diff dir": ["diff", str(directory), str(FIXTURES / "mini-nim.trace.json")],
    }
    if bad_file.name == "seccomp.json":
        commands["diff file"] = ["diff", str(FIXTURES / "mini-nim.trace.json"), str(bad_file)]
    return commands


@pytest.mark.parametrize("name", ["seccomp.json", "capabilities.json", "recording.json"])
def test_mutated_profiles(name, good_profile, scratch, capsys):
    tmp_path = scratch
    base = json.loads((good_profile / name).read_text())
    problems, refusals = [], 0
    for what, doc in mutations(base):
        directory = profile_with(good_profile, tmp_path, name, doc)
        out = tmp_path / "out"
        must_refuse = name == "seccomp.json" and not SECCOMP_SCHEMA.is_valid(doc)
        for command, args in profile_commands(directory, directory / name, out).items():
            code, err = run(capsys, *args)
            refusals += code == 2
            if code == 2 or must_refuse:
                problem = refused(code, err, directory / name)
                if problem:
                    problems.append(f"{command} {what}: {problem}")
            if code == 2 and out.exists():
                problems.append(f"{command} {what}: wrote {out}")
            if out.exists():
                for child in out.iterdir():
                    child.unlink()
                out.rmdir()
    assert refusals > 20
    assert not problems, "\n".join(problems[:20])


# ---------------------------------------------------------------- the cases the issues found


CASE_TRACES = {2: FIXTURES / "python-chown.trace.json", 1: V1 / "shell-nonroot.trace.json"}


def trace_doc(version: int) -> dict:
    doc = orjson.loads(CASE_TRACES[version].read_bytes())
    assert doc["version"] == version
    return doc


def final_counters(doc: dict) -> dict:
    """The rows of the final counters: version 2's totals, version 1's last snapshot."""
    return doc["totals"] if doc["version"] == 2 else doc["snapshots"][-1]


def final_path(doc: dict) -> str:
    return "totals" if doc["version"] == 2 else f"snapshots[{len(doc['snapshots']) - 1}]"


def empty_snapshot(doc: dict) -> dict:
    if doc["version"] == 1:
        return {"t": 0.0}
    return {"n": 0, "t": 0.0, "phase": 0, "calls": [0, 0, 0, 0], "new_syscalls": [], "new_capabilities": []}


def with_rows(doc: dict, *rows) -> dict:
    final_counters(doc)["syscalls"].extend(rows)
    return doc


MOUNT = 165  # x86_64
MAX_SNAPSHOTS = {1: "86,400", 2: "512"}  # what the schema allows: every v1 checkpoint, the bounded v2 series
# Messages are formatted with {at} (the JSON path of the final counters), {syscalls} and
# {capabilities} (how many rows they had before the mutation), {max_snapshots}.
TRACE_CASES = {
    "phases of the wrong type": (lambda d: d.update(phases={"runtime": 0}), "phases: expected"),
    "unknown architecture": (lambda d: d["metadata"].update(arch="SCMP_ARCH_VAX"), "metadata.arch: expected one of"),
    "target as a string": (
        lambda d: d["metadata"].update(target="runc"),
        'metadata.target: expected an object, got the string "runc"',
    ),
    "capability 50": (
        lambda d: final_counters(d)["capabilities"].append([2, 50, 92, 0, 1]),
        "{at}.capabilities[{capabilities}][1]: 50 is above the maximum 40",
    ),
    "string boolean": (
        lambda d: d["metadata"]["target"].update(rootfs_readonly="false"),
        'metadata.target.rootfs_readonly: expected true, false or null, got the string "false"',
    ),
    "2^63 calls in two phases": (
        lambda d: with_rows(d, [2, MOUNT, 2**63, 0, 0, 0], [3, MOUNT, 2**63, 0, 0, 0]),
        "{at}.syscalls: calls add up to",
    ),
    "a count of 2^64": (
        lambda d: with_rows(d, [2, MOUNT, 2**64, 0, 0, 0]),
        "{at}.syscalls[{syscalls}][2]: expected an integer",
    ),
    "a negative count": (
        lambda d: with_rows(d, [2, MOUNT, -1, 0, 0, 0]),
        "{at}.syscalls[{syscalls}][2]: -1 is below the minimum 0",
    ),
    "incomplete as a string": (
        lambda d: d["metadata"].update(complete="true"),
        "metadata.complete: expected true or false",
    ),
    "100,000 empty snapshots": (
        lambda d: d.update(snapshots=[empty_snapshot(d)] * 100_000),
        "snapshots: expected at most {max_snapshots} items, got 100,000",
    ),
}


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("case", TRACE_CASES, ids=str)
def test_issue_trace_cases(case, version, tmp_path, capsys):
    mutate, message = TRACE_CASES[case]
    doc = trace_doc(version)
    counters = final_counters(doc)
    message = message.format(
        at=final_path(doc),
        syscalls=len(counters["syscalls"]),
        capabilities=len(counters["capabilities"]),
        max_snapshots=MAX_SNAPSHOTS[version],
    )
    mutate(doc)
    bad = write(tmp_path / "bad.trace.json", doc)
    for name, args in trace_commands(bad, tmp_path / "out").items():
        code, err = run(capsys, *args)
        assert refused(code, err, bad) is None and message in err, f"{name}: {code} {err}"
        assert not written(tmp_path / "out")


def nested(levels: int) -> list:
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


def deeply_nested_metadata(levels: int) -> bytes:
    """A trace whose metadata carries an unknown field LEVELS lists deep (written by hand:
    orjson refuses to write more than 254 levels)."""
    doc = trace_doc(2)
    doc["metadata"]["nested"] = "NESTED"
    return orjson.dumps(doc).replace(b'"NESTED"', b"[" * levels + b"]" * levels)


ODD_TRACES = {
    "version 1.0": (
        lambda: orjson.dumps({**trace_doc(1), "version": 1.0}),
        "trace format version 1.0 is not supported",
    ),
    "version 2.0": (
        lambda: orjson.dumps({**trace_doc(2), "version": 2.0}),
        "trace format version 2.0 is not supported",
    ),
    "metadata 300 levels deep": (
        lambda: deeply_nested_metadata(300),
        "metadata.nested: nested more than 32 levels deep",
    ),
    "metadata 10,000 levels deep": (lambda: deeply_nested_metadata(10_000), "not valid JSON"),
}


@pytest.mark.parametrize("case", ODD_TRACES, ids=str)
def test_a_float_version_or_deep_nesting_is_an_input_error(case, good_profile, tmp_path, capsys):
    """Every command that reads a trace, JSON output and the report included."""
    document, message = ODD_TRACES[case]
    bad = tmp_path / "bad.trace.json"
    bad.write_bytes(document())
    out = tmp_path / "out"
    commands = {
        **trace_commands(bad, out),
        "show json": ["show", "--format", "json", str(bad)],
        "report": ["report", str(good_profile), "--trace", str(bad), "--out", str(out / "report.html")],
    }
    for name, args in commands.items():
        code, err = run(capsys, *args)
        assert refused(code, err, bad) is None and message in err, f"{name}: {code} {err}"
        assert not written(out)


def test_metadata_nested_as_deep_as_allowed_still_loads(tmp_path, capsys):
    doc = trace_doc(2)
    doc["metadata"]["nested"] = nested(32)
    assert main(["show", "--format", "json", str(write(tmp_path / "deep.trace.json", doc))]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["nested"] == nested(32)


def maximal_trace(version: int, started_at: str) -> dict:
    """A valid trace whose only counter is 2^64-1 calls of mount in startup."""
    doc = trace_doc(version)
    doc["metadata"]["started_at"] = started_at
    row = [2, MOUNT, 2**64 - 1, 0, 0, 0]
    if version == 1:
        doc["snapshots"] = [{"t": 1.0, "syscalls": [row], "capabilities": []}]
    else:
        doc["totals"] = {"t": 1.0, "syscalls": [row], "capabilities": []}
        doc["snapshots"] = [
            {
                "n": 0,
                "t": 1.0,
                "phase": 2,
                "calls": [0, 0, 2**64 - 1, 0],
                "new_syscalls": [[2, MOUNT]],
                "new_capabilities": [],
            }
        ]
        doc["snapshots_dropped"] = 0
        doc["arguments"]["rows"] = []
    return doc


@pytest.mark.parametrize("versions", [(2, 2), (1, 1), (1, 2)], ids=lambda v: f"v{v[0]}+v{v[1]}")
def test_merge_of_two_maximal_counts(versions, tmp_path, capsys):
    """Each trace alone is valid (a single count of 2^64-1); their sum is not."""
    paths = []
    for index, (version, started) in enumerate(zip(versions, ("2026-11-28T22:24:52.386Z", "2026-11-29T22:24:52.386Z"))):
        paths.append(write(tmp_path / f"max{index}.json", maximal_trace(version, started)))
        assert run(capsys, "show", str(paths[-1]))[0] == 0
        assert int(load_trace(paths[-1]).final.syscalls[2, MOUNT, 0]) == 2**64 - 1
    code, err = run(capsys, "merge", *map(str, paths), "--out", str(tmp_path / "m.json"))
    assert refused(code, err, paths[1]) is None and "passes 2^64-1" in err
    assert not (tmp_path / "m.json").exists()


PROFILE_CASES = {
    "names as a string": (
        "seccomp.json",
        lambda p: p["syscalls"][0].update(names="mount"),
        'syscalls[0].names: expected a list, got the string "mount"',
    ),
    "bogus action": (
        "seccomp.json",
        lambda p: p.update(defaultAction="SCMP_ACT_BOGUS"),
        "defaultAction: expected one of",
    ),
    "x86_64 for an architecture": (
        "seccomp.json",
        lambda p: p.update(architectures=["x86_64"]),
        "architectures[0]: expected one of",
    ),
    "unknown syscall": (
        "seccomp.json",
        lambda p: p["syscalls"][0]["names"].append("not_a_syscall"),
        "'not_a_syscall' is not a syscall libseccomp knows on SCMP_ARCH_X86_64",
    ),
    "errno on allow": (
        "seccomp.json",
        lambda p: p["syscalls"][0].update(errnoRet=1),
        "SCMP_ACT_ALLOW returns no errno",
    ),
    "argument 7": (
        "seccomp.json",
        lambda p: p["syscalls"][-1]["args"][0].update(index=7),
        "args[0].index: 7 is above 5",
    ),
    "bogus operator": (
        "seccomp.json",
        lambda p: p["syscalls"][-1]["args"][0].update(op="SCMP_CMP_ABOUT"),
        "args[0].op: expected one of",
    ),
    "capability 50": ("capabilities.json", lambda c: c["add"].append("CAP_50"), "add[0]: expected one of"),
    "drop NONE": ("capabilities.json", lambda c: c.update(drop=["NONE"]), "drop[0]: expected one of"),
    "string boolean": (
        "recording.json",
        lambda r: r.update(rootfs_readonly="false"),
        'rootfs_readonly: expected true, false or null, got the string "false"',
    ),
}


@pytest.mark.parametrize("case", PROFILE_CASES, ids=str)
def test_issue_profile_cases(case, good_profile, tmp_path, capsys):
    name, mutate, message = PROFILE_CASES[case]
    doc = json.loads((good_profile / name).read_text())
    mutate(doc)
    directory = profile_with(good_profile, tmp_path, name, doc)
    out = tmp_path / "out"
    for command, args in profile_commands(directory, directory / name, out).items():
        code, err = run(capsys, *args)
        assert refused(code, err, directory / name) is None and message in err, f"{command}: {code} {err}"
        assert not out.exists()


CONDITIONAL_RULE = {
    "names": ["personality"],
    "action": "SCMP_ACT_ALLOW",
    "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
}


def test_argument_conditions_pass_through(good_profile, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "k8s", "seccompprofile", str(good_profile), "--name", "nim", "--out-dir", str(out))[0] == 0
    assert json.loads((out / "nim.json").read_text())["syscalls"][-1] == CONDITIONAL_RULE
    assert "op: SCMP_CMP_EQ" in (out / "nim.seccompprofile.yaml").read_text()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "process": {"args": ["true"]}}))
    assert run(capsys, "apply", str(good_profile), "--bundle", str(bundle))[0] == 0
    assert json.loads((bundle / "config.json").read_text())["linux"]["seccomp"]["syscalls"][-1] == CONDITIONAL_RULE


def test_an_argument_value_the_seccompprofile_cannot_hold(good_profile, tmp_path, capsys):
    seccomp = json.loads((good_profile / "seccomp.json").read_text())
    seccomp["syscalls"][-1]["args"][0]["value"] = 2**63
    directory = profile_with(good_profile, tmp_path, "seccomp.json", seccomp)
    code, err = run(
        capsys, "k8s", "seccompprofile", str(directory), "--name", "nim", "--out-dir", str(tmp_path / "out")
    )
    assert refused(code, err, directory / "seccomp.json") is None and "does not fit the SeccompProfile's int64" in err
    assert not (tmp_path / "out").exists()
