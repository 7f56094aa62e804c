"""`tracer report`: the facts gathered from a profile, a trace and a manifest, and the HTML and
Markdown pages made of them (offline: no root, no BPF, no browser)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from support.paths import FIXTURES, REPO
from support.report_inputs import HOSTILE, MINI_NIM_NETWORK, hostile_inputs, page, trace_copy, write_profile
from tracer.cli import main
from tracer.errors import InputError
from tracer.kube.harden import harden_text
from tracer.profile.against import compare_profile_dir
from tracer.profile.directory import load_profile_dir
from tracer.profile.filter import load_docker_default
from tracer.profile.merge import merge_traces
from tracer.profile.seccomp import allowed_names
from tracer.report.arguments import argument_rules, describe_condition
from tracer.report.html import render_html
from tracer.report.markdown import render_markdown
from tracer.report.model import RARE_BELOW, build_report, docker_treatment
from tracer.syscalls import syscall_name
from tracer.trace.format import (
    PHASES,
    PROFILE_PHASES,
    load_trace,
    write_trace,
)

MINI_NIM = REPO / "profiles/mini-nim"
MINI_NIM_TRACE = FIXTURES / "mini-nim.trace.json"
MINI_NIM_MANIFEST = REPO / "tracer/embedded/mininim/deployment.yaml"
TRACES = sorted(FIXTURES.glob("*.trace.json"))


def recorded_calls(path: Path) -> dict[str, int]:
    """Calls per syscall name in the profiled phases, straight from the trace's counters."""
    trace = load_trace(path)
    totals = trace.final.syscalls[[PHASES.index(p) for p in PROFILE_PHASES], :, 0].sum(axis=0)
    return {syscall_name(trace.arch, int(nr)) or f"syscall_{nr}": int(totals[nr]) for nr in np.flatnonzero(totals)}


def syscalls_line(report) -> str:
    """The headline figure, from `tracer risk`'s comparison of the committed profile."""
    against = compare_profile_dir(MINI_NIM, "runtime-default")
    allowed = len(allowed_names(load_profile_dir(MINI_NIM).seccomp))
    return (
        f"{allowed} allowed; the runtime default allows {against.baseline_allowed}: "
        f"{len(against.refused) / against.baseline_allowed:.0%} of it refused"
    )


@pytest.fixture(scope="module")
def mini_nim_report():
    return build_report(MINI_NIM, MINI_NIM_TRACE, MINI_NIM_MANIFEST)


# ---------------------------------------------------------------- the model on the mini-NIM


def test_mini_nim_activity_matches_the_trace(mini_nim_report):
    activity = mini_nim_report.activity
    calls = recorded_calls(MINI_NIM_TRACE)
    assert {bar.name: bar.total for bar in activity.bars} == calls
    assert activity.total_calls == sum(calls.values())
    assert [bar.total for bar in activity.bars] == sorted(calls.values(), reverse=True)
    assert sorted(activity.rare) == sorted(name for name, count in calls.items() if count < RARE_BELOW)
    assert activity.phases == ("handover", "startup", "load")
    futex = next(bar for bar in activity.bars if bar.name == "futex")
    assert futex.calls["load"] > futex.calls["startup"] > 0


def test_mini_nim_profile_allows_what_the_fixture_recorded(mini_nim_report):
    seccomp = load_profile_dir(MINI_NIM).seccomp
    allowed = allowed_names(seccomp)
    fallbacks = {name for rule in seccomp["syscalls"] if rule.get("errnoRet") == 38 for name in rule["names"]}
    assert set(recorded_calls(MINI_NIM_TRACE)) <= allowed | fallbacks
    assert mini_nim_report.activity.refused_by_profile == []
    assert mini_nim_report.profile.allowed == tuple(sorted(allowed))


def test_mini_nim_capabilities_and_comparison(mini_nim_report):
    capabilities = json.loads((MINI_NIM / "capabilities.json").read_text())
    facts = mini_nim_report.capabilities
    assert list(facts.added) == capabilities["add"] == []
    assert set(facts.not_required) == set(capabilities["not_required"]) == {"CAP_SYS_ADMIN"}
    assert sum(row.count for row in facts.not_required["CAP_SYS_ADMIN"]) == sum(
        row["count"] for row in capabilities["not_required"]["CAP_SYS_ADMIN"]
    )
    comparison = mini_nim_report.runtime_default
    against = compare_profile_dir(MINI_NIM, "runtime-default")  # what `tracer risk` says
    assert (comparison.allowed, comparison.baseline) == (
        len(allowed_names(load_profile_dir(MINI_NIM).seccomp)),
        against.baseline_allowed,
    )
    assert comparison.beyond == () and against.wider == []  # never wider than the runtime default


def test_mini_nim_provenance_says_which_recording(mini_nim_report):
    """The page shows the trace given, and whether the profile was generated from it: scripts/demo
    regenerates the profile from a new recording (another time, maybe another kernel), the fixture stays."""
    provenance = mini_nim_report.provenance
    recording = json.loads((MINI_NIM / "recording.json").read_text())
    fixture = load_trace(MINI_NIM_TRACE).metadata
    assert provenance.trace_is_profiles_recording is (
        fixture["started_at"] in {t["started_at"] for t in recording["traces"]}
    )
    (shown,) = provenance.recordings
    assert (shown.started_at, shown.kernel) == (fixture["started_at"], fixture["kernel"])
    assert shown.runtime.startswith("runc 1.1.5")
    assert provenance.lost_known and provenance.lost == {}


def test_a_trace_the_profile_was_not_generated_from_names_the_profiles_own_recording(tmp_path):
    """A reviewer given another recording learns which one the profile came from."""
    recording = json.loads((MINI_NIM / "recording.json").read_text())
    recording["traces"][0]["started_at"] = "2026-01-02T03:04:05Z"
    recording["traces"][0]["kernel"] = "6.1.0-test"
    profile = tmp_path / "profile"
    shutil.copytree(MINI_NIM, profile)
    (profile / "recording.json").write_text(json.dumps(recording))
    report = build_report(profile, MINI_NIM_TRACE)
    assert report.provenance.trace_is_profiles_recording is False
    said = "The profile was generated from the recording of 2026-01-02T03:04:05Z on kernel 6.1.0-test (recording.json)."
    assert said in page(render_html(report)).joined and said in render_markdown(report)


def test_mini_nim_attack_rows(mini_nim_report):
    rows = {row.technique.id: row for row in mini_nim_report.attack.rows}
    assert not rows["T1611"].reachable and rows["T1611"].unconfined  # closed by clone's and clone3's rules
    assert any("refused by argument conditions" in line for line in rows["T1611"].closed_by)
    assert not rows["T1055.008"].reachable and "ptrace refused (SCMP_ACT_ERRNO)" in rows["T1055.008"].closed_by
    assert rows["T1055.008"].runtime_default  # ptrace is open under the runtime default on kernels >= 4.8
    assert not rows["T1014"].runtime_default and rows["T1014"].unconfined
    order = [row.reachable for row in mini_nim_report.attack.rows]
    assert order == sorted(order, reverse=True)


def test_mini_nim_pod_security_matches_k8s_harden(mini_nim_report):
    facts = mini_nim_report.pod_security
    direct = harden_text(MINI_NIM_MANIFEST.read_text(), load_profile_dir(MINI_NIM))
    assert (
        [(o.title, o.level_before, o.level_after) for o in facts.objects]
        == [(o.title, o.level_before, o.level_after) for o in direct.reports]
        == [("Deployment/mini-nim", "baseline", "restricted")]
    )


def test_mini_nim_html_says_the_key_figures(mini_nim_report):
    html = render_html(mini_nim_report)
    text = page(html).joined
    assert syscalls_line(mini_nim_report) in text
    assert f"{len(mini_nim_report.activity.bars)} syscalls, {mini_nim_report.activity.total_calls:,} calls" in text
    assert "none added (drop ALL)" in text
    assert "baseline \u2192 restricted" in text
    assert "T1611" in text and "Escape to Host" in text
    assert "nothing lost (every lost counter is zero)" in text
    assert "Not recorded (the trace has no network section)" in text
    assert "None: every syscall the profile allows is allowed with any arguments." not in text
    assert "arg 0 (flags): none of CLONE_NEWNS" in text  # the committed profile's clone rule


def test_chart_has_one_row_per_syscall_and_marks_the_rare(mini_nim_report):
    html = render_html(mini_nim_report)
    svg = html[html.index("<svg") : html.index("</svg>")]
    activity = mini_nim_report.activity
    names = re.findall(r'<text[^>]*class="name"[^>]*>(?:\u25c6 )?([^<]+)</text>', svg)
    assert names == [bar.name for bar in activity.bars]
    rare_labels = re.findall(r'class="name"[^>]*style="fill:#c5221f[^>]*>\u25c6 ([^<]+)<', svg)
    assert rare_labels == activity.rare
    bars = sum(1 for bar in activity.bars for phase in activity.phases if bar.calls.get(phase))
    assert svg.count("<rect") - len(activity.phases) == bars  # minus the legend's swatches
    widths = {
        title: float(width)
        for width, title in re.findall(r'width="([\d.]+)" height="6" fill="[^"]+"><title>([^<]+)</title>', svg)
    }
    futex_load = widths[next(t for t in widths if t.startswith("futex:") and t.endswith("in load"))]
    assert futex_load == max(widths.values())


def test_html_is_self_contained(mini_nim_report):
    html = render_html(mini_nim_report)
    parsed = page(html)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parsed.tags)
    assert not [name for name, _ in parsed.attributes if name == "src" or name.startswith("on")]
    assert "url(" not in html and "@import" not in html
    assert "default-src 'none'" in html
    hrefs = [value for name, value in parsed.attributes if name == "href"]
    assert hrefs and all(href.startswith("https://attack.mitre.org/techniques/") for href in hrefs)


def test_markdown_has_the_same_facts(mini_nim_report):
    text = render_markdown(mini_nim_report)
    assert text.startswith("# Least-privilege security context: mini-nim\n")
    assert f"| **Syscalls** | {syscalls_line(mini_nim_report)} |" in text
    assert "| Deployment/mini-nim | mini-nim | baseline | restricted | nothing |" in text
    for bar in mini_nim_report.activity.bars:
        assert re.search(rf"^\| (\u25c6 )?{re.escape(bar.name)} \|.* \| {bar.total:,} \| \u2588+ \|$", text, re.M), (
            bar.name
        )
    assert "[T1611](https://attack.mitre.org/techniques/T1611" in text  # a closed technique is listed too


# ---------------------------------------------------------------- every fixture, its own profile


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_every_fixture_reports_its_own_profile(path, tmp_path):
    assert main(["generate", str(path), "--out", str(tmp_path / "p")]) == 0
    report = build_report(tmp_path / "p", path)
    capabilities = json.loads((tmp_path / "p/capabilities.json").read_text())
    assert report.provenance.trace_is_profiles_recording is True
    assert report.activity.refused_by_profile == []
    assert {bar.name: bar.total for bar in report.activity.bars} == recorded_calls(path)
    assert list(report.capabilities.added) == capabilities["add"]
    assert set(report.capabilities.failed_without) == set(capabilities["failed_without"])
    html, markdown = render_html(report), render_markdown(report)
    text = page(html).joined
    for capability in [*capabilities["add"], *capabilities["failed_without"], *capabilities["not_required"]]:
        assert capability in text and capability in markdown
    for capability, rows in capabilities["evidence"].items():
        for row in rows:
            assert f"{row['syscall']} in {row['phase']} ({row['count']}x" in text
    assert f"{len(report.activity.bars)} syscalls, {report.activity.total_calls:,} calls" in text


def test_python_chown_shows_the_capability_it_used(tmp_path):
    assert main(["generate", str(FIXTURES / "python-chown.trace.json"), "--out", str(tmp_path / "p")]) == 0
    report = build_report(tmp_path / "p", FIXTURES / "python-chown.trace.json")
    assert list(report.capabilities.added) == ["CAP_CHOWN"]
    (evidence,) = [row for row in report.capabilities.added["CAP_CHOWN"] if row.syscall.endswith("chown")]
    assert evidence.outcome == "granted" and evidence.phase == "startup"
    assert "CAP_CHOWN (drop ALL)" in page(render_html(report)).joined


def test_shell_nonroot_lists_what_failed_without(tmp_path):
    assert main(["generate", str(FIXTURES / "shell-nonroot.trace.json"), "--out", str(tmp_path / "p")]) == 0
    report = build_report(tmp_path / "p", FIXTURES / "shell-nonroot.trace.json")
    assert report.capabilities.failed_without, "the fixture's chown 0 fails without CAP_CHOWN"
    section = render_html(report).split('id="capabilities"')[1].split("</section>")[0]
    failed = section.split("Failed without")[1].split("Checked but not required")[0]
    for capability in report.capabilities.failed_without:
        assert capability in failed


# ---------------------------------------------------------------- rare syscalls


def test_rare_threshold_is_the_rule():
    calls = recorded_calls(MINI_NIM_TRACE)
    assert build_report(MINI_NIM, MINI_NIM_TRACE, rare_below=1).activity.rare == []
    everything = build_report(MINI_NIM, MINI_NIM_TRACE, rare_below=max(calls.values()) + 1).activity
    assert sorted(everything.rare) == sorted(calls)
    assert "seen fewer than 3 times" in build_report(MINI_NIM, MINI_NIM_TRACE, rare_below=3).activity.rare_rule


def test_merged_trace_marks_syscalls_of_one_run_rare(tmp_path):
    http, nim = FIXTURES / "http-server.trace.json", MINI_NIM_TRACE
    merged = tmp_path / "merged.trace.json"
    write_trace(merge_traces([load_trace(http), load_trace(nim)]), merged)
    activity = build_report(MINI_NIM, merged, rare_below=1).activity
    only_one = set(recorded_calls(http)) ^ set(recorded_calls(nim))
    assert set(activity.rare) == only_one and "one of the 2 merged runs" in activity.rare_rule


# ---------------------------------------------------------------- argument conditions


NAMESPACES_MASK = 0x7E020000


def test_conditions_read_with_names():
    masked = describe_condition(
        "clone", {"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": NAMESPACES_MASK, "valueTwo": 0}
    )
    assert masked.reads == (
        "arg 0 (flags): none of CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, "
        "CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET set"
    )
    assert masked.raw == "SCMP_CMP_MASKED_EQ 0x7e020000 0x0"
    assert (
        describe_condition("socket", {"index": 0, "op": "SCMP_CMP_EQ", "value": 10}).reads
        == "arg 0 (domain) == AF_INET6 (10)"
    )
    assert (
        describe_condition("socket", {"index": 1, "op": "SCMP_CMP_EQ", "value": 0o2000001}).reads
        == "arg 1 (type) == SOCK_STREAM|SOCK_CLOEXEC (524289)"
    )
    assert (
        describe_condition("mprotect", {"index": 2, "op": "SCMP_CMP_MASKED_EQ", "value": 4, "valueTwo": 4}).reads
        == "arg 2 (prot): all of PROT_EXEC set"
    )
    assert (
        describe_condition("ioctl", {"index": 1, "op": "SCMP_CMP_NE", "value": 0x5412}).reads
        == "arg 1 (request) != TIOCSTI (0x5412)"
    )
    assert describe_condition("write", {"index": 2, "op": "SCMP_CMP_LE", "value": 4096}).reads == "arg 2 <= 0x1000"
    assert "does not know" in describe_condition("read", {"index": 0, "op": "SCMP_CMP_WHAT", "value": 1}).reads


def test_docker_default_conditions_are_described():
    docker = load_docker_default()
    rules = argument_rules(docker)
    assert len(rules) == sum(1 for rule in docker["syscalls"] if rule.get("args"))
    clone = next(rule for rule in rules if rule.names == ("clone",) and rule.conditions[0].index == 0)
    assert (
        "none of CLONE_NEWNS" in clone.reads() and clone.applies == "except with CAP_SYS_ADMIN; except on s390, s390x"
    )
    assert (
        docker_treatment(docker, "clone3", "SCMP_ARCH_X86_64")
        == "allowed only with CAP_SYS_ADMIN; otherwise SCMP_ACT_ERRNO (errno 38)"
    )
    assert docker_treatment(docker, "read", "SCMP_ARCH_X86_64") == "allowed"
    assert docker_treatment(docker, "not_a_syscall", "SCMP_ARCH_X86_64") == "refused: SCMP_ACT_ERRNO (errno 1)"


def test_profile_with_argument_conditions(tmp_path):
    names = sorted(allowed_names(load_profile_dir(MINI_NIM).seccomp) - {"clone", "socket"} | {"clone3"})
    rules = [
        {"names": names, "action": "SCMP_ACT_ALLOW"},
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "comment": "threads only",
            "args": [{"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": NAMESPACES_MASK, "valueTwo": 0}],
        },
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 2}]},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 1}]},
    ]
    report = build_report(write_profile(tmp_path / "args", rules), MINI_NIM_TRACE)
    assert [rule.names for rule in report.argument_rules] == [("clone",), ("socket",), ("socket",)]
    text = page(render_html(report)).joined
    assert "arg 0 (flags): none of CLONE_NEWNS" in text and "threads only" in text
    assert "arg 0 (domain) == AF_INET (2)" in text and "arg 0 (domain) == AF_UNIX (1)" in text
    assert "3 rule(s) with conditions" in text
    rows = {row.technique.id: row for row in report.attack.rows}
    assert not rows["T1557.002"].reachable  # AF_PACKET sockets refused
    assert any("refused by argument conditions" in line for line in rows["T1557.002"].closed_by)
    assert {r.name for r in rows["T1611"].profile} == {r.name for r in rows["T1068"].profile} == {"clone3"}
    here = {name: how for name, how, _ in report.runtime_default.beyond}
    # Rule by rule: clone without namespace flags is what the runtime default allows too; clone3
    # with any flags is wider (the runtime default answers ENOSYS).
    assert here.keys() == {"clone3"} and here["clone3"] == "any arguments"
    assert "arg 0 (domain) == AF_INET (2)" in render_markdown(report)


# ---------------------------------------------------------------- network surface


def test_network_section_is_rendered_when_present(tmp_path):
    path = trace_copy(tmp_path, lambda doc: doc.__setitem__("network", MINI_NIM_NETWORK))
    report = build_report(MINI_NIM, path)
    surface = report.network.surface
    assert surface is not None and surface.privileged_ports() == [80]
    text = page(render_html(report)).joined
    assert "tcp 0.0.0.0:8000 from outside the pod no" in text
    assert "tcp 127.0.0.1:9000 the pod only (loopback) no" in text
    assert "udp [::]:80 from outside the pod below 1024: CAP_NET_BIND_SERVICE" in text
    assert "udp 10.96.0.10:53 4" in text and "eth0 veth up 10.213.7.2/30" in text
    assert "2 listener(s) reachable from outside the pod; 1 destination(s)" in text
    markdown = render_markdown(report)
    assert "| tcp 0.0.0.0:8000 | from outside the pod | no |" in markdown
    assert "| udp 10.96.0.10:53 | 4 |" in markdown


@pytest.mark.parametrize(
    "destinations, said",
    [
        (None, "Not recorded: where the workload connected to is unknown"),
        ([], "Recorded: none (the workload connected nowhere)."),
    ],
)
def test_destinations_unknown_and_none_differ(destinations, said, tmp_path):
    path = trace_copy(
        tmp_path, lambda doc: doc.__setitem__("network", {**MINI_NIM_NETWORK, "destinations": destinations})
    )
    report = build_report(MINI_NIM, path)
    assert said in page(render_html(report)).joined and said.split(":")[0] in render_markdown(report)


def test_network_not_recorded_is_said():
    assert not build_report(MINI_NIM, MINI_NIM_TRACE).network.recorded
    assert "Not recorded (no trace given)." in page(render_html(build_report(MINI_NIM))).joined


# ---------------------------------------------------------------- provenance and lost counters


def test_lost_counters_are_listed(tmp_path):
    path = trace_copy(tmp_path, lambda doc: doc["lost"].update(cap_map_full=2, bpf_recursion_misses=17))
    report = build_report(MINI_NIM, path)
    assert report.provenance.lost == {"cap_map_full": 2, "bpf_recursion_misses": 17}
    text = page(render_html(report)).joined
    assert "lost: bpf_recursion_misses 17, cap_map_full 2" in text and "nothing lost" not in text
    assert "lost: bpf_recursion_misses 17, cap_map_full 2" in render_markdown(report)


def test_without_trace_provenance_comes_from_the_profile(tmp_path):
    report = build_report(MINI_NIM)
    assert report.activity is None and not report.provenance.from_trace
    recording = json.loads((MINI_NIM / "recording.json").read_text())
    assert [r.started_at for r in report.provenance.recordings] == [t["started_at"] for t in recording["traces"]]
    text = page(render_html(report)).joined
    assert "No trace given (--trace): calls per phase are not shown." in text
    assert "nothing lost (every lost counter is zero)" in text
    bare = write_profile(tmp_path / "bare", [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}])
    assert "not known: no trace given" in page(render_html(build_report(bare))).joined
    lossy = write_profile(
        tmp_path / "lossy",
        [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
        recording={"traces": [{"started_at": "x", "lost": {"pending_map_full": 3}}]},
    )
    assert "lost: pending_map_full 3" in page(render_html(build_report(lossy))).joined


# ---------------------------------------------------------------- escaping


def test_everything_from_the_inputs_is_escaped(tmp_path):
    profile, trace, manifest = hostile_inputs(tmp_path)
    report = build_report(profile, trace, manifest)
    assert report.pod_security.objects[0].name == HOSTILE
    html = render_html(report)
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5  # host, target, comment, evidence, manifest...
    parsed = page(html)
    assert "script" not in parsed.tags
    assert f"Deployment/{HOSTILE}" in parsed.joined  # shown as text, not run
    markdown = render_markdown(report)
    assert "<script" not in markdown.lower() and "&lt;script&gt;" in markdown


def test_a_hostile_syscall_name_in_a_profile_is_refused_before_anything_is_shown(tmp_path):
    profile = write_profile(tmp_path / "profile", [{"names": ["read", HOSTILE], "action": "SCMP_ACT_ALLOW"}])
    with pytest.raises(InputError, match="is not a syscall libseccomp knows"):
        build_report(profile, None, None)


# ---------------------------------------------------------------- the command


def test_cli_writes_html_and_markdown(tmp_path, capsys):
    html_out, md_out = tmp_path / "r.html", tmp_path / "r.md"
    base = ["report", str(MINI_NIM), "--trace", str(MINI_NIM_TRACE), "--manifest", str(MINI_NIM_MANIFEST)]
    assert main([*base, "--out", str(html_out)]) == 0
    assert html_out.read_text().startswith("<!DOCTYPE html>")
    assert main([*base, "--out", str(md_out)]) == 0
    assert md_out.read_text().startswith("# Least-privilege security context: mini-nim")
    assert main([*base, "--out", str(tmp_path / "r.txt"), "--page-format", "markdown"]) == 0
    assert (tmp_path / "r.txt").read_text().startswith("# ")
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.md", "r.txt"]  # no temporary left


@pytest.mark.parametrize(
    "problem, args, message",
    [
        ("no profile", ["report", "{tmp}/nope", "--out", "{tmp}/r.html"], "profile directory not found"),
        (
            "bad trace",
            ["report", str(MINI_NIM), "--trace", "{tmp}/bad.json", "--out", "{tmp}/r.html"],
            "not valid JSON",
        ),
        (
            "no manifest",
            ["report", str(MINI_NIM), "--manifest", "{tmp}/none.yaml", "--out", "{tmp}/r.html"],
            "manifest not found",
        ),
        (
            "bad manifest",
            ["report", str(MINI_NIM), "--manifest", "{tmp}/bad.json", "--out", "{tmp}/r.html"],
            "invalid JSON",
        ),
        (
            "no pod",
            ["report", str(MINI_NIM), "--manifest", "{tmp}/configmap.yaml", "--out", "{tmp}/r.html"],
            "no pod template",
        ),
        (
            "format",
            ["report", str(MINI_NIM), "--page-format", "pdf", "--out", "{tmp}/r.html"],
            "invalid --page-format 'pdf'",
        ),
        ("threshold", ["report", str(MINI_NIM), "--rare-below", "0", "--out", "{tmp}/r.html"], "at least 1"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(problem, args, message, tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"format": "x", "oops" 1}')
    (tmp_path / "configmap.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n")
    assert main([arg.replace("{tmp}", str(tmp_path)) for arg in args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_build_report_raises_input_error_naming_the_file(tmp_path):
    broken = write_profile(tmp_path / "broken", [{"names": "read", "action": "SCMP_ACT_ALLOW"}])
    with pytest.raises(InputError) as err:
        build_report(broken)
    assert "seccomp.json" in str(err.value)
    trace = trace_copy(tmp_path, lambda doc: doc.__setitem__("network", {**MINI_NIM_NETWORK, "listening": [{}]}))
    with pytest.raises(InputError) as err:
        build_report(MINI_NIM, trace)
    assert (
        err.value.source == str(trace)
        and "network.listening[0]" in err.value.problem
        and "missing" in err.value.problem
    )
    shutil.rmtree(broken)
