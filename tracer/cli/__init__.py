"""The `tracer` command line: thin typer commands over the library modules.

`main()` is the one error boundary: every failure becomes one line on stderr naming what
failed, and an exit code (see tracer.cli.app.EXIT_STATUS); TRACER_DEBUG=1 adds the traceback.
Whatever a command made and has not removed yet is removed before `main()` returns.
"""

from __future__ import annotations

import os
import re
import sys
import traceback

import typer

try:  # typer >= 0.22 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

from tracer.cli.app import EXIT_INPUT, EXIT_OK, app
from tracer.errors import EXIT_MACHINE, TracerError
from tracer.owned import OWNED

# Each module registers its commands on `app`; this order is the order of `tracer --help`.
from tracer.cli import record, profile, verify, risk, report, pss, kube, audit, denials, network, load  # noqa: F401,I001  isort: skip

BadParameter, ClickException, UsageError = (
    click_exceptions.BadParameter,
    click_exceptions.ClickException,
    click_exceptions.UsageError,
)
# A group called without a command (`tracer`, `tracer pss`): click >= 8.2 raises this to show its help.
NoArgsIsHelp = getattr(click_exceptions, "NoArgsIsHelpError", ())

# typer and click word a bad choice as "'xml' is not one of 'text', 'json'." (typer's
# pydantic layer puts "Value error, " in front).
_NOT_ONE_OF = re.compile(r"(?P<value>'[^']*'|\"[^\"]*\") is not one of (?P<choices>.+?)\.?$")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; the one place where failures become exit codes."""
    try:
        return _run(argv)
    finally:
        OWNED.close()


def _run(argv: list[str] | None) -> int:
    try:
        result = app(args=argv, prog_name="tracer", standalone_mode=False)
    except TracerError as err:  # InputError (exit 2), MachineError (exit 3)
        return _fail(str(err), err.exit_code)
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return 130
    except NoArgsIsHelp as err:
        typer.echo(err.ctx.get_help(), err=True)
        return EXIT_INPUT
    except UsageError as err:  # usage errors surface here in non-standalone mode
        typer.echo(f"error: {usage_problem(err)}{help_hint(err)}", err=True)
        return EXIT_INPUT
    except ClickException as err:
        err.show()
        return err.exit_code
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


def usage_problem(err: UsageError) -> str:
    """One line: `invalid --format 'xml': must be text or json` for every bad choice."""
    param = getattr(err, "param", None)
    found = _NOT_ONE_OF.search(err.message)
    if isinstance(err, BadParameter) and param is not None and found:
        choices = [choice.strip().strip("'") for choice in found["choices"].split(",")]
        return f"invalid {option_name(param)} {found['value']}: must be {or_list(choices)}"
    message = " ".join(err.format_message().split()).rstrip(".")
    return message[:1].lower() + message[1:]


def option_name(param) -> str:
    longest = max(param.opts or [param.name or "value"], key=len)
    return longest if longest.startswith("-") else longest.upper()


def or_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def help_hint(err: UsageError) -> str:
    ctx = getattr(err, "ctx", None)
    return f" (see {ctx.command_path} --help)" if ctx is not None else ""


if __name__ == "__main__":
    sys.exit(main())
