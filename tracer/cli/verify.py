"""`tracer apply` and `tracer verify`: put a profile into a bundle, prove it under load."""

from __future__ import annotations

from pathlib import Path

import typer

from tracer.cli.app import EXIT_FINDINGS, EXIT_OK, FORMAT_OPTION, app, check_format, print_json


@app.command()
def apply(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by tracer generate."),
    bundle: Path = typer.Option(..., "--bundle", help="OCI bundle whose config.json gets the profile."),
) -> None:
    """Write a profile into an OCI bundle's config.json: linux.seccomp, the capability set
    (bounding, effective, permitted = the profile's add list) and noNewPrivileges true,
    keeping everything else. Exit status 0, or 2 for bad input.
    """
    from tracer.verify.run import apply_profile

    config = apply_profile(profile, bundle)
    caps = config["process"]["capabilities"]["effective"]
    typer.echo(f"{bundle}/config.json: seccomp {config['linux']['seccomp']['defaultAction']}, "
               f"capabilities {', '.join(caps) or 'none'}, noNewPrivileges")


@app.command()
def verify(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by tracer generate."),
    bundle: Path = typer.Option(..., "--bundle", help="OCI bundle of the workload (left unchanged)."),
    load: str = typer.Option(None, "--load", metavar="COMMAND", help="Shell command that loads the workload once it is ready; must exit 0. Runs in the container's network namespace when the bundle joins a named one."),
    ready_url: str = typer.Option(None, "--ready-url", metavar="URL", help="Wait until URL answers 2xx before the load (the container's readiness probe)."),
    ready_timeout: float = typer.Option(120, "--ready-timeout", help="Seconds to wait for readiness."),
    stop_timeout: float = typer.Option(30, "--stop-timeout", help="Seconds the container has to exit after its stop signal."),
    probe: bool = typer.Option(True, "--probe/--no-probe", help="Probe dangerous syscalls the profile does not allow (mount, unshare, setns, ptrace, bpf, keyctl, ...) inside the running container."),
    out: Path = typer.Option(None, "--out", help="Also write what the verification run did as a trace."),
    fmt: str = FORMAT_OPTION,
) -> None:
    """Prove a profile: run the container under it, wait for readiness, run the load, stop it
    with its stop signal, and count everything the kernel refused meanwhile (syscalls the
    filter refused, capability checks denied where the call then failed) per phase.

    Passes (exit 0) only when the load succeeds, the container stops cleanly (exit 0) and
    nothing was refused; then it also shows that each dangerous syscall the workload never
    made is refused inside the container. Otherwise lists each failure and exits 1.
    Needs root. Exit 2 for bad input.
    """
    from tracer.verify.run import verify as run_verify

    check_format(fmt)
    report = run_verify(profile, bundle, load, ready_url=ready_url, ready_timeout=ready_timeout, stop_timeout=stop_timeout,
                        probe=probe, out=out, log=(lambda m: typer.echo(m, err=True)) if fmt == "text" else (lambda m: None))
    if fmt == "json":
        print_json(report.to_json())
    else:
        typer.echo(report.to_text())
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FINDINGS)


