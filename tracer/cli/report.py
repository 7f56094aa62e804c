"""`tracer report`: one self-contained page for the person who signs off on a security context."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from tracer.cli.app import app
from tracer.report import RARE_BELOW

MARKDOWN_SUFFIXES = (".md", ".markdown")


class PageFormat(str, Enum):
    html = "html"
    markdown = "markdown"


def report_format(fmt: PageFormat | None, out: Path) -> PageFormat:
    """--format when given, else from the file name: .md/.markdown is Markdown, anything else HTML."""
    if fmt is None:
        return PageFormat.markdown if out.suffix.lower() in MARKDOWN_SUFFIXES else PageFormat.html
    return fmt


@app.command("report")
def report(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by `tracer generate`."),
    trace: Path = typer.Option(
        None,
        "--trace",
        metavar="TRACE",
        help="The recording: calls per phase, rare syscalls, network surface, provenance.",
    ),
    manifest: Path = typer.Option(
        None,
        "--manifest",
        metavar="FILE",
        help="The workload's Kubernetes manifest: Pod Security level before and after "
        "hardening, as `tracer k8s harden` reads it.",
    ),
    container: str = typer.Option(
        None,
        "--container",
        metavar="NAME",
        help="With --manifest: harden only this container (default: every app container).",
    ),
    pss_version: str = typer.Option(
        "latest", "--pss-version", metavar="VERSION", help='Pod Security Standards version: "latest" or "v1.N".'
    ),
    rare_below: int = typer.Option(
        RARE_BELOW, "--rare-below", metavar="N", help="Mark syscalls seen fewer than N times in the recording as rare."
    ),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help="Write the page to FILE (atomically)."),
    page_format: PageFormat = typer.Option(
        None, "--page-format", help="The page's format; default from FILE's suffix (.md is Markdown)."
    ),
) -> None:
    """Write a one-page security review of a profile for a change request.

    Self-contained (inline CSS and SVG, no script, nothing fetched): the syscall counts per phase
    as a log-scale chart with rare syscalls marked, the capability evidence, the profile's
    argument conditions, the network surface when the trace recorded one, the Pod Security
    level before and after hardening (--manifest), the MITRE ATT&CK techniques left reachable
    or closed, the comparison with the runtime default profile, and the provenance (when,
    where, kernel, runtime, lost counters).

    Exit status: 0 written, 2 usage or input error (nothing written), 3 a problem of the machine.

    Examples:

    \b
      tracer report profiles/mini-nim --trace fixtures/mini-nim.trace.json --out report.html
      tracer report profiles/mini-nim --manifest deploy/nim.yaml --out report.md
    """
    from tracer.files import atomic_write_text
    from tracer.report.html import render_html
    from tracer.report.markdown import render_markdown
    from tracer.report.model import build_report

    chosen = report_format(page_format, out)
    facts = build_report(profile, trace, manifest, container=container, pss_version=pss_version, rare_below=rare_below)
    atomic_write_text(out, render_markdown(facts) if chosen is PageFormat.markdown else render_html(facts))
    typer.echo(f"wrote {out} ({chosen.value})")
