"""`tracer risk`: what a profile still allows, against the confinement it replaces."""

from __future__ import annotations

from pathlib import Path

import typer

from tracer.cli.app import EXIT_FINDINGS, EXIT_OK, FORMAT_OPTION, OutputFormat, app, print_json


@app.command()
def risk(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by tracer generate."),
    against: str = typer.Option(
        "runtime-default",
        "--against",
        metavar="BASELINE",
        help="runtime-default (Docker's current default profile), containerd-VERSION "
        "(containerd's RuntimeDefault of that version: 1.6.20, 1.6, 1.7, 2; generated "
        "from containerd's own code), unconfined, or FILE: an OCI or Docker-format "
        "seccomp profile.",
    ),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Show what a profile still allows: where it is wider than a baseline, and ATT&CK techniques.

    First DIR's seccomp profile is compared rule by rule with the baseline, evaluated for
    DIR's own capability set (capabilities.json add) and architecture: every place the
    profile allows more (a syscall the baseline refuses, or arguments outside its
    conditions: clone with namespace flags, a socket family, a personality value) is listed
    with the recorded evidence that forced it (recording.json). Then the MITRE ATT&CK for
    Containers techniques the profile and its capabilities leave reachable, each with the
    syscalls, argument values or capabilities that keep it open, and the techniques closed
    compared with the baseline and containerd's default capabilities (the container before
    hardening).

    Exit status: 0 never wider without evidence, 1 a place wider than the baseline with no
    recorded evidence (a finding), 2 usage or input error, 3 a problem of the machine.

    Examples:

    \b
      tracer risk profiles/mini-nim
      tracer risk profiles/mini-nim --against unconfined -f json
      tracer risk profiles/mini-nim --against containerd-1.7
      tracer risk profiles/nim --against ./docker-default.json
    """
    from tracer.profile.against import compare_profile_dir
    from tracer.risk import attack

    comparison = compare_profile_dir(profile, against)
    ours = attack.Confinement.from_profile_dir(profile)
    reachable = attack.reachable_techniques(ours.seccomp, ours.capabilities)
    closed = attack.closed_techniques(ours, attack.before_hardening(against))
    if fmt is OutputFormat.json:
        print_json({**comparison.to_json(), "attack": attack.report_json(reachable, closed)})
    else:
        typer.echo(comparison.to_text())
        typer.echo(attack.report_text(reachable, closed))
    raise typer.Exit(EXIT_FINDINGS if comparison.findings else EXIT_OK)
