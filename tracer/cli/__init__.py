"""The `tracer` command line: thin typer commands over the library modules.

`main()` is the one error boundary: every error a user can act on becomes one line on
stderr and an exit code (see tracer.cli.app.EXIT_STATUS).
"""

from __future__ import annotations

import re
import sys

import typer

try:  # typer >= 0.22 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

from tracer.cli.app import EXIT_INPUT, EXIT_OK, app
from tracer.errors import InputError

# Each module registers its commands on `app`; this order is the order of `tracer --help`.
from tracer.cli import record, profile, verify, report, pss, kube, audit, denials, network, load  # noqa: F401,I001

BadParameter, ClickException, UsageError = (click_exceptions.BadParameter, click_exceptions.ClickException,
                                            click_exceptions.UsageError)
# A group called without a command (`tracer`, `tracer pss`): click >= 8.2 raises this to show its help.
NoArgsIsHelp = getattr(click_exceptions, "NoArgsIsHelpError", ())

# Errors a user can act on, and the exit status each means.
EXIT_BY_ERROR: tuple[tuple[type[Exception], int], ...] = ((InputError, EXIT_INPUT),)

# typer and click word a bad choice as "'xml' is not one of 'text', 'json'." (typer's
# pydantic layer puts "Value error, " in front).
_NOT_ONE_OF = re.compile(r"(?P<value>'[^']*'|\"[^\"]*\") is not one of (?P<choices>.+?)\.?$")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; turn errors into one line on stderr and an exit status."""
    try:
        result = app(args=argv, prog_name="tracer", standalone_mode=False)
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
    except Exception as err:
        status = exit_status_of(err)
        if status is None:
            raise
        typer.echo(f"error: {err}", err=True)
        return status
    return result if isinstance(result, int) else EXIT_OK


def exit_status_of(err: Exception) -> int | None:
    return next((status for kind, status in EXIT_BY_ERROR if isinstance(err, kind)), None)


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
