"""`tracer risk`: is a profile ever weaker than the runtime default it replaces?"""

from __future__ import annotations

from pathlib import Path

import typer

from tracer.cli.app import EXIT_FINDINGS, EXIT_OK, FORMAT_OPTION, app, check_format, print_json


@app.command()
def risk(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by tracer generate."),
    against: str = typer.Option("runtime-default", "--against", metavar="BASELINE",
                                help="runtime-default (Docker's default profile, which containerd's RuntimeDefault "
                                     "follows), unconfined, or FILE: an OCI or Docker-format seccomp profile."),
    fmt: str = FORMAT_OPTION,
) -> None:
    """Compare DIR's seccomp profile rule by rule with a baseline, evaluated for DIR's own
    capability set (capabilities.json add) and architecture.

    Lists every place the profile allows more than the baseline: a syscall the baseline
    refuses, or arguments outside its conditions (clone with namespace flags, a socket
    family, a personality value), each with the recorded evidence that forced it
    (recording.json). Exit 1 when any such place has no evidence, 0 otherwise, 2 for bad
    input.
    """
    from tracer.profile.against import compare_profile_dir

    check_format(fmt)
    comparison = compare_profile_dir(profile, against)
    if fmt == "json":
        print_json(comparison.to_json())
    else:
        typer.echo(comparison.to_text())
    raise typer.Exit(EXIT_FINDINGS if comparison.findings else EXIT_OK)
