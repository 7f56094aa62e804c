"""`tracer load`: the load tester of tracer.loadtest, whose argparse parser owns the options.

Everything after `load` (including --help) is handed to that parser unchanged, so
`tracer load` and `python3 scripts/loadtest.py` accept exactly the same arguments.
"""

from __future__ import annotations

import typer

from tracer import loadtest
from tracer.cli.app import app


@app.command(
    "load",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def load(ctx: typer.Context) -> None:
    """Load-test an OpenAI-compatible endpoint (NIM or mini-NIM); `tracer load --help` for options."""
    raise typer.Exit(loadtest.main(list(ctx.args), prog="tracer load"))
