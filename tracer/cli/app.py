"""The root `tracer` app and what every command shares: exit codes, the output format, `-`
for standard input and output, deprecated option spellings.

Exit codes: 0 ok, 1 findings, 2 usage or input error, 3 a problem of the machine.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from tracer import __version__
from tracer.cli.helptext import TracerTyper
from tracer.errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_MACHINE, EXIT_OK, InputError  # noqa: F401 (the commands' exit codes)
from tracer.files import atomic_write_text, to_json

EXIT_STATUS = (
    "Exit status: 0 ok; 1 findings (a refused syscall, a denied pod, a profile that grew, "
    "lost counters); 2 usage or input error (one line on stderr naming the file and the "
    "problem; nothing half-written); 3 a problem of the machine (runc, BPF, cgroups, disk, "
    "a missing tool)."
)

STDIO = "-"  # a file argument that means standard input, or standard output for --out

app = TracerTyper(
    name="tracer",
    help=(
        "Record what a container really does with eBPF and turn it into least-privilege "
        "policy: every syscall and capability check, per phase, becomes an OCI seccomp "
        "profile, a capability set and Kubernetes policy.\n\n"
        "`tracer COMMAND --help` describes a command, with examples. Files may be `-` for "
        "standard input (or standard output with --out) where the command says so; "
        "`--format json` (or -f json) prints one JSON document for programs.\n\n" + EXIT_STATUS
    ),
    add_completion=True,
)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"tracer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Record containers with eBPF and turn what they do into least-privilege policy."""


# ---------------------------------------------------------------- output format


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


FORMAT_OPTION = typer.Option(
    OutputFormat.text, "--format", "-f", help="text for people, json for programs (one document on stdout)."
)


def print_json(obj, stream=None) -> None:
    (stream or sys.stdout).write(to_json(obj).decode())


# ---------------------------------------------------------------- - for stdin and stdout


def input_path(path: Path) -> Path:
    """PATH, or /dev/stdin for `-`: a name every reader can open and every message can show."""
    return Path("/dev/stdin") if str(path) == STDIO else path


def input_paths(paths: list[Path]) -> list[Path]:
    """input_path for each; standard input can be read once only."""
    if sum(str(path) == STDIO for path in paths) > 1:
        raise InputError(None, "`-` (standard input) may be given once only")
    return [input_path(path) for path in paths]


def is_stdout(out: Path | None) -> bool:
    return out is not None and str(out) == STDIO


def write_text_output(text: str, out: Path | None) -> None:
    """TEXT to standard output (no --out, or --out -), else atomically to the file OUT."""
    if out is None or is_stdout(out):
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(out, text)


# ---------------------------------------------------------------- renamed options


def deprecated_alias(old: str, new: str, metavar: str):
    """A hidden option OLD that still works, and says once on stderr to use NEW instead."""

    def warn(value):
        if value is not None:
            typer.echo(f"warning: {old} is deprecated, use {new}", err=True)
        return value

    return typer.Option(None, old, hidden=True, metavar=metavar, callback=warn)


def preferred(value, alias_value):
    """The value given through a deprecated alias when it was used, else the option's own."""
    return value if alias_value is None else alias_value
