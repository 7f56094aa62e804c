"""The `tracer` command line: thin typer commands over the library modules.

Exit codes: 0 ok, 1 findings (a denied pod, a refused syscall, a profile that grew),
2 usage or input error (one line on stderr naming the file and the problem).
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.22 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

from tracer.cli.app import EXIT_INPUT, EXIT_OK, app
from tracer.errors import InputError

# Each module registers its commands on `app`; this order is the order of `tracer --help`.
from tracer.cli import record, profile, verify, risk, pss, kube, audit, denials, load  # noqa: E402,F401,I001


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
    except ClickException as err:  # usage errors surface here in non-standalone mode
        err.show()
        return EXIT_INPUT
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
