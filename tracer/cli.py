"""The `tracer` command line: thin typer commands over the library modules.

Exit codes: 0 ok, 1 findings (a denied pod, a refused syscall, a profile that grew),
2 usage or input error (one line on stderr naming the file and the problem).
"""

from __future__ import annotations

import sys

import typer

from tracer import __version__
from tracer.errors import InputError

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2

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


# --- command groups: each module registers its own commands on `app` ---
# (keep one import per line; modules import `app` from here)
# --- end command groups ---


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turn InputError into one line and exit 2."""
    try:
        result = app(args=argv, standalone_mode=False)
    except InputError as err:
        typer.echo(f"error: {err}", err=True)
        return EXIT_INPUT
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return 130
    except Exception as err:  # click usage errors come here in non-standalone mode
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            return EXIT_INPUT
        raise
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
