"""`tracer apply` and `tracer verify`: put a profile into a bundle, prove it under load."""

from __future__ import annotations

from pathlib import Path

import typer

from tracer.cli.app import EXIT_FINDINGS, EXIT_OK, FORMAT_OPTION, OutputFormat, app, print_json


@app.command()
def apply(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by tracer generate."),
    bundle: Path = typer.Option(..., "--bundle", metavar="DIR", help="OCI bundle whose config.json gets the profile."),
) -> None:
    """Write a profile into an OCI bundle's config.json.

    Sets linux.seccomp, the capability set (bounding, effective, permitted = the profile's
    add list) and noNewPrivileges true, keeping everything else; config.json is written
    atomically.

    Exit status: 0 ok, 2 a missing or bad profile or bundle, 3 a problem of the machine.

    Examples:

    \b
      tracer apply profiles/nim --bundle ./bundle
      tracer generate nim.trace.json --out profiles/nim && tracer apply profiles/nim --bundle ./bundle
    """
    from tracer.verify.run import apply_profile

    config = apply_profile(profile, bundle)
    caps = config["process"]["capabilities"]["effective"]
    typer.echo(
        f"{bundle}/config.json: seccomp {config['linux']['seccomp']['defaultAction']}, "
        f"capabilities {', '.join(caps) or 'none'}, noNewPrivileges"
    )


@app.command()
def verify(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by tracer generate."),
    bundle: Path = typer.Option(..., "--bundle", metavar="DIR", help="OCI bundle of the workload (left unchanged)."),
    load: str = typer.Option(
        None,
        "--load",
        metavar="COMMAND",
        help="Shell command that loads the workload once it is ready; must exit 0. Runs in the container's network namespace when the bundle joins a named one.",
    ),
    ready_url: str = typer.Option(
        None,
        "--ready-url",
        metavar="URL",
        help="Wait until URL answers 2xx before the load (the container's readiness probe).",
    ),
    ready_timeout: float = typer.Option(120, "--ready-timeout", metavar="S", help="Seconds to wait for readiness."),
    stop_timeout: float = typer.Option(
        30, "--stop-timeout", metavar="S", help="Seconds the container has to exit after its stop signal."
    ),
    probe: bool = typer.Option(
        True,
        "--probe/--no-probe",
        help="Probe dangerous syscalls the profile does not allow (mount, unshare, setns, ptrace, bpf, keyctl, ...) inside the running container.",
    ),
    out: Path = typer.Option(
        None, "--out", "-o", metavar="TRACE", help="Also write what the verification run did as a trace."
    ),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Prove a profile: run the workload under it, load it, count every refusal.

    Runs the container under the profile, waits for readiness, runs the load, stops it
    with its stop signal, and counts everything the kernel refused meanwhile (syscalls the
    filter refused, capability checks denied where the call then failed) per phase.
    Passes only when the load succeeds, the container stops cleanly (exit 0) and nothing
    was refused; then it also shows that each dangerous syscall the workload never made
    is refused inside the container. Needs root.

    Exit status: 0 passed, 1 failed (each failure is listed), 2 a missing or bad profile
    or bundle, 3 a problem of the machine (runc, BPF, cgroups).

    Examples:

    \b
      tracer verify profiles/nim --bundle ./bundle \\
          --ready-url http://127.0.0.1:8000/v1/health/ready --load 'scripts/loadtest.py --requests 400'
      tracer verify profiles/nim --bundle ./bundle --no-probe -f json
    """
    from tracer.verify.run import verify as run_verify

    report = run_verify(
        profile,
        bundle,
        load,
        ready_url=ready_url,
        ready_timeout=ready_timeout,
        stop_timeout=stop_timeout,
        probe=probe,
        out=out,
        log=lambda message: typer.echo(message, err=True),
    )
    if fmt is OutputFormat.json:
        print_json(report.to_json())
    else:
        typer.echo(report.to_text())
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FINDINGS)
