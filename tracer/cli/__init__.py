"""The `tracer` command line: thin typer commands over the library modules.

Exit codes: 0 ok, 1 findings (a denied pod, a refused syscall, a profile that grew, lost
counters), 2 usage or input error, 3 a problem of the machine (runc, BPF, cgroups, disk,
a missing tool). Every failure is one line on stderr naming what failed; TRACER_DEBUG=1
adds the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

try:  # typer >= 0.22 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

from tracer.cli.app import EXIT_INPUT, EXIT_OK, app
from tracer.errors import EXIT_MACHINE, TracerError
from tracer.owned import OWNED

# Each module registers its commands on `app`; this order is the order of `tracer --help`.
from tracer.cli import record, profile, verify, pss, kube, audit, denials, load, network, report  # noqa: E402,F401,I001


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; the one place where failures become exit codes.

    Whatever the command made and has not removed yet (cgroups, containers, scratch
    directories) is removed before it returns, whatever happened."""
    try:
        return _run(argv)
    finally:
        OWNED.close()


def _run(argv: list[str] | None) -> int:
    try:
        result = app(args=argv, standalone_mode=False)
    except TracerError as err:
        return _fail(str(err), err.exit_code)
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return 130
    except ClickException as err:  # usage errors surface here in non-standalone mode
        err.show()
        return EXIT_INPUT
    except OSError as err:  # the machine refused something no command expected to fail
        where = f"{err.filename}: " if err.filename else ""
        return _fail(f"{where}{err.strerror or err}", EXIT_MACHINE)
    except Exception as err:  # noqa: BLE001 (the one boundary: a bug is one line too)
        return _fail(f"internal: {type(err).__name__}: {err}", EXIT_MACHINE)
    return result if isinstance(result, int) else EXIT_OK


def _fail(message: str, code: int) -> int:
    if os.environ.get("TRACER_DEBUG") == "1":
        traceback.print_exc()
    one_line = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    typer.echo(f"error: {one_line}", err=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
