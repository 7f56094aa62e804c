"""One convention across every command: help, output format, errors, `-`, renamed options,
capability spellings, shell completion. Offline, unprivileged."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import typer

from support.cli import tracer_cli
from support.paths import FIXTURES, REPO
from tracer import loadtest
from tracer.cli import app, main

HARDENED_POD = (
    "apiVersion: v1\nkind: Pod\nmetadata: {name: good, namespace: web}\nspec:\n"
    "  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\n"
    "  containers: [{name: app, image: x, securityContext: "
    "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]\n"
)
TRACE = FIXTURES / "python-chown.trace.json"


def all_commands() -> list[tuple[str, object]]:
    """(`tracer pss check`, click command) for every command, groups excluded."""
    found = []

    def walk(path: str, command) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found.append((path, command))
        for name, child in (children or {}).items():
            walk(f"{path} {name}", child)

    walk("tracer", typer.main.get_command(app))
    return found


COMMANDS = all_commands()
COMMAND_IDS = [path for path, _ in COMMANDS]


def help_of(path: str, capsys) -> str:
    assert main([*path.split()[1:], "--help"]) == 0
    return capsys.readouterr().out


def test_every_command_is_reachable():
    assert {
        "tracer record",
        "tracer show",
        "tracer generate",
        "tracer merge",
        "tracer diff",
        "tracer apply",
        "tracer verify",
        "tracer audit",
        "tracer denials",
        "tracer load",
        "tracer pss check",
        "tracer pss level",
        "tracer k8s namespace",
        "tracer k8s admission-config",
        "tracer k8s harden",
        "tracer k8s seccompprofile",
        "tracer risk",
        "tracer report",
        "tracer network observe",
        "tracer network policy",
    } == set(COMMAND_IDS)


@pytest.mark.parametrize("path", COMMAND_IDS)
def test_help_reads_like_a_man_page(path, capsys):
    text = help_of(path, capsys)
    assert text.startswith(f"Usage: {path} ")
    assert not re.search(r"<\w+|<list|\{[A-Z]", text), "a Python type or {PLACEHOLDER} instead of a metavar"
    examples = text[text.index("Examples:") :]
    assert examples.count(path) >= 1  # real invocations of this very command
    assert text.index("Options:") < text.index("Examples:")


@pytest.mark.parametrize("path", COMMAND_IDS)
def test_help_states_the_exit_codes(path, capsys):
    status = " ".join(help_of(path, capsys).split())
    status = status[status.index("Exit status:") :]
    assert re.search(r"\b0 \w", status) and re.search(r"\b2 \w", status)
    if path != "tracer load":  # the load tester makes no use of the machine beyond a socket
        assert "3 a problem of the machine" in status


def test_root_help_documents_every_exit_code_and_lists_whole_sentences(capsys):
    text = help_of("tracer", capsys)
    flat = " ".join(text.split())
    assert "0 ok; 1 findings" in flat and "2 usage or input error" in flat and "3 a problem of the machine" in flat
    commands = text[text.index("Commands:") :].splitlines()[1:]
    summaries = re.findall(r"^  (\S+)\s+(.*(?:\n {4,}\S.*)*)", "\n".join(commands), re.MULTILINE)
    assert [name for name, _ in summaries] == [
        "record",
        "show",
        "generate",
        "merge",
        "diff",
        "apply",
        "verify",
        "risk",
        "report",
        "audit",
        "denials",
        "load",
        "pss",
        "k8s",
        "network",
    ]
    for name, summary in summaries:
        sentence = " ".join(summary.split())
        assert sentence.endswith(".") and "..." not in sentence, (name, sentence)


def test_python_m_tracer_and_the_installed_command_print_the_same_help():
    installed = tracer_cli("--help").stdout
    module = subprocess.run([sys.executable, "-m", "tracer", "--help"], capture_output=True, text=True, cwd=REPO)
    assert module.returncode == 0 and module.stdout == installed


@pytest.mark.parametrize(
    "path", [p for p, command in COMMANDS if any(o.name == "fmt" or "--format" in o.opts for o in command.params)]
)
def test_every_format_option_is_the_same_and_refuses_a_bad_value_alike(path, capsys):
    assert "-f, --format [text|json]" in help_of(path, capsys)
    assert main([*path.split()[1:], "--format", "xml"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: invalid --format 'xml': must be text or json (see {path} --help)\n"


def test_the_format_option_is_on_every_command_that_prints_results():
    with_format = {path for path, command in COMMANDS if any("--format" in o.opts for o in command.params)}
    assert with_format == set(COMMAND_IDS) - {
        "tracer apply",
        "tracer k8s namespace",
        "tracer k8s admission-config",
        "tracer k8s harden",
        "tracer k8s seccompprofile",
        "tracer report",
        "tracer network policy",
    }


def test_short_format_flag_works(capsys):
    assert main(["show", str(TRACE), "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["syscalls"]


@pytest.mark.parametrize(
    "args, problem",
    [
        (["show"], "error: missing argument 'TRACE' (see tracer show --help)"),
        (["show", str(TRACE), "--bogus"], "error: no such option: --bogus (see tracer show --help)"),
        (
            ["generate", str(TRACE), "--out", "x", "--default-action", "nope"],
            "error: invalid --default-action 'nope': must be errno, kill or log (see tracer generate --help)",
        ),
        (["bogus"], "error: no such command 'bogus' (see tracer --help)"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, problem, capsys):
    assert main(args) == 2
    assert capsys.readouterr().err == problem + "\n"


@pytest.mark.parametrize("group", [[], ["pss"], ["k8s"]])
def test_a_group_without_a_command_shows_its_help(group, capsys):
    assert main(group) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Usage: {' '.join(['tracer', *group])} [OPTIONS] COMMAND") and "Commands:" in err


# --- - for standard input and output ------------------------------------------------


def run_with_stdin(*args: str, stdin: str | bytes) -> subprocess.CompletedProcess:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run([str(REPO / ".venv/bin/tracer"), *args], input=data, capture_output=True)


def test_show_reads_a_trace_from_stdin():
    done = run_with_stdin("show", "-", "-f", "json", stdin=TRACE.read_bytes())
    assert done.returncode == 0, done.stderr
    assert (
        json.loads(done.stdout)["syscalls"]
        == json.loads(tracer_cli("show", str(TRACE), "-f", "json").stdout)["syscalls"]
    )


def test_generate_reads_a_trace_from_stdin(tmp_path):
    done = run_with_stdin("generate", "-", "--out", str(tmp_path / "p"), stdin=TRACE.read_bytes())
    assert done.returncode == 0, done.stderr
    assert tracer_cli("generate", str(TRACE), "--out", str(tmp_path / "q")).returncode == 0
    assert (tmp_path / "p/seccomp.json").read_text() == (tmp_path / "q/seccomp.json").read_text()


def test_stdin_can_be_named_once_only(capsys):
    assert main(["generate", "-", "-", "--out", "x"]) == 2
    assert "`-` (standard input) may be given once only" in capsys.readouterr().err


def test_pss_check_reads_a_manifest_from_stdin():
    done = run_with_stdin("pss", "check", "-", stdin=HARDENED_POD)
    assert done.returncode == 0 and done.stdout.decode() == "/dev/stdin: Pod/web/good: allowed\n"


def test_merge_writes_the_trace_to_stdout_and_the_summary_to_stderr():
    done = subprocess.run(
        [str(REPO / ".venv/bin/tracer"), "merge", str(TRACE), str(FIXTURES / "shell-nonroot.trace.json"), "--out", "-"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"]["count"] == 2
    summaries = [line for line in done.stderr.splitlines() if not line.startswith("warning: ")]
    assert summaries and summaries[0].startswith("-: 2 runs, ")


def test_k8s_harden_reads_stdin_and_writes_stdout_with_the_report_on_stderr(tmp_path):
    profile = tmp_path / "p"
    assert tracer_cli("generate", str(FIXTURES / "shell-nonroot.trace.json"), "--out", str(profile)).returncode == 0
    manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: app\n    image: x\n"
    done = run_with_stdin("k8s", "harden", "-", "--profile", str(profile), "--out", "-", stdin=manifest)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode in (0, 1), err
    assert out.startswith("apiVersion: v1\nkind: Pod\n") and "localhostProfile: seccomp-tracer/p.json" in out
    assert "Pod/p: containers app: Pod Security" in err and "wrote" not in err + out


def test_k8s_namespace_writes_to_stdout_with_out_dash():
    assert (
        tracer_cli("k8s", "namespace", "nim", "--enforce", "restricted", "--out", "-").stdout
        == tracer_cli("k8s", "namespace", "nim", "--enforce", "restricted").stdout
    )


# --- renamed options -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command, args",
    [
        ("pss check", ["{manifest}", "-f", "json"]),
        ("pss level", ["{manifest}", "-f", "json"]),
        ("k8s namespace", ["shop", "--enforce", "baseline"]),
    ],
)
def test_version_still_works_as_policy_version_and_says_so(command, args, tmp_path, capsys):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(HARDENED_POD)
    argv = [*command.split(), *(str(manifest) if a == "{manifest}" else a for a in args)]
    assert main([*argv, "--policy-version", "v1.30"]) == 0
    with_new = capsys.readouterr()
    assert main([*argv, "--version", "v1.30"]) == 0
    with_old = capsys.readouterr()
    assert with_old.out == with_new.out and "v1.30" in with_new.out
    assert with_old.err == "warning: --version is deprecated, use --policy-version\n" and with_new.err == ""
    text = help_of(f"tracer {command}", capsys)
    assert "--policy-version VERSION" in text and "--version" not in text


def test_record_keeps_namespace_as_a_hidden_alias_of_containerd_namespace(capsys):
    assert main(["record", "--namespace", "k8s.io", "--out", "x.json"]) == 2  # no target: stops before recording
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "warning: --namespace is deprecated, use --containerd-namespace"
    assert err[1].startswith("error: choose exactly one target")
    text = help_of("tracer record", capsys)
    assert "--containerd-namespace NS" in text and not re.search(r"^\s+--namespace", text, re.MULTILINE)


def test_k8s_harden_keeps_pss_version_as_a_hidden_alias(tmp_path, capsys):
    profile = tmp_path / "p"
    assert main(["generate", str(FIXTURES / "shell-nonroot.trace.json"), "--out", str(profile)]) == 0
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(HARDENED_POD)
    capsys.readouterr()
    code = main(
        [
            "k8s",
            "harden",
            str(manifest),
            "--profile",
            str(profile),
            "--out",
            str(tmp_path / "o.yaml"),
            "--pss-version",
            "v1.30",
        ]
    )
    assert code in (0, 1) and (tmp_path / "o.yaml").exists()
    assert "warning: --pss-version is deprecated, use --policy-version" in capsys.readouterr().err


# --- capabilities ----------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["CHOWN", "chown", "cap_chown", "CAP_CHOWN", "Cap_Chown"])
def test_a_capability_is_accepted_in_any_spelling(spelling, tmp_path, capsys):
    out = tmp_path / "p"
    assert (
        main(["generate", str(FIXTURES / "shell-nonroot.trace.json"), "--out", str(out), "--add-capability", spelling])
        == 0
    )
    assert json.loads((out / "capabilities.json").read_text())["add"] == ["CAP_CHOWN"]


def test_an_unknown_capability_exits_2_listing_the_known_ones(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["generate", str(TRACE), "--out", str(out), "--add-capability", "CHOWNN"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown --add-capability 'CHOWNN'") and err.count("\n") == 1
    assert " CHOWN " in err and "NET_BIND_SERVICE" in err and "CHECKPOINT_RESTORE" in err
    assert not out.exists()


# --- shell completion ------------------------------------------------------------------


def test_completion_script_is_offered_for_bash():
    done = tracer_cli("--show-completion", "bash")
    assert done.returncode == 0 and "_TRACER_COMPLETE=complete_bash" in done.stdout
    assert "complete -o default -F _tracer_completion tracer" in done.stdout


@pytest.mark.parametrize(
    "words, expected",
    [("tracer ge", ["generate"]), ("tracer show -f ", ["text", "json"]), ("tracer pss ", ["check", "level"])],
)
def test_completion_completes_commands_and_choices(words, expected):
    env = {
        **os.environ,
        "_TRACER_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    done = subprocess.run([str(REPO / ".venv/bin/tracer")], env=env, capture_output=True, text=True)
    assert done.stdout.split() == expected


# --- tracer load ----------------------------------------------------------------------


def test_tracer_load_is_a_typer_command_with_the_scripts_options(capsys):
    text = help_of("tracer load", capsys)
    assert text.startswith("Usage: tracer load [OPTIONS]") and "-f, --format [text|json]" in text
    load_command = dict(COMMANDS)["tracer load"]
    typer_options = {opt for param in load_command.params for opt in param.opts if opt.startswith("--")}
    script_options = {
        opt
        for action in loadtest.build_parser()._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }
    assert typer_options == script_options


def test_tracer_load_usage_errors_exit_2(capsys):
    assert main(["load", "--url", "ftp://x"]) == 2
    assert "expected http://HOST[:PORT]" in capsys.readouterr().err
    assert main(["load", "--requests", "many"]) == 2
