"""The root `tracer` app and what every command shares: exit codes, the output format option.

Exit codes: 0 ok, 1 findings (a denied pod, a refused syscall, a profile that grew),
2 usage or input error (one line on stderr naming the file and the problem).
"""

from __future__ import annotations

import sys

import typer

from tracer import __version__
from tracer.errors import InputError
from tracer.files import to_json

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_MACHINE = 0, 1, 2, 3

app = typer.Typer(
    name="tracer",
    help=(
        "Record what a container really does with eBPF (every syscall and capability check, "
        "per phase) and turn it into a least-privilege OCI seccomp profile, a capability set "
        "and Kubernetes policy.\n\n"
        "Exit status: 0 ok, 1 findings, 2 usage or input error."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"tracer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """seccomp-tracer."""


FORMAT_OPTION = typer.Option("text", "--format", "-f", help="Output format: text for people, json for programs.")


def check_format(fmt: str) -> str:
    if fmt not in ("text", "json"):
        raise InputError(None, f"unknown format {fmt!r} (text or json)")
    return fmt


def print_json(obj, stream=None) -> None:
    (stream or sys.stdout).write(to_json(obj).decode())


