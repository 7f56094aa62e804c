"""`tracer pss`: check manifests against the Pod Security Standards, as the API server would."""

from __future__ import annotations

from pathlib import Path

import typer

from tracer.cli.app import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_STATUS,
    FORMAT_OPTION,
    OutputFormat,
    app,
    deprecated_alias,
    input_paths,
    preferred,
)
from tracer.cli.helptext import TracerTyper
from tracer.files import to_json
from tracer.kube import pss
from tracer.kube.manifests import LoadedObject, LoadResult, load_manifests

pss_app = TracerTyper(
    help=(
        "Check pods and pod templates against the Pod Security Standards, as the API server "
        "would. The levels are privileged, baseline and restricted; the evaluation is the "
        "PodSecurity admission plugin's, for any policy version from v1.0 to the newest.\n\n"
        "PATH is a manifest file, a folder searched recursively for *.yaml, *.yml and "
        "*.json, or - for standard input. Pods, Deployments, StatefulSets, DaemonSets, "
        "ReplicaSets, Jobs, CronJobs, ReplicationControllers and PodTemplates are evaluated; "
        "other kinds are skipped with a note on stderr.\n\n"
        "Manifests are read as kubectl and the API server read them (YAML 1.1: "
        "`privileged: yes` is true), and every field the checks read must have its API "
        "type: input that cannot be judged is an error (exit 2), never allowed.\n\n" + EXIT_STATUS
    ),
)

PATHS = typer.Argument(
    ...,
    metavar="PATH...",
    show_default=False,
    help="Manifest files or folders; - reads one manifest from standard input.",
)
POLICY_VERSION = typer.Option(
    "latest",
    "--policy-version",
    metavar="VERSION",
    help=f'Pod Security policy version: "latest" (the newest known, v1.{pss.NEWEST_MINOR}) or "v1.N".',
)
OLD_VERSION = deprecated_alias("--version", "--policy-version", "VERSION")


@pss_app.command("check")
def check(
    paths: list[Path] = PATHS,
    level: str = typer.Option(
        "restricted",
        "--level",
        metavar="[privileged|baseline|restricted]",
        autocompletion=lambda: list(pss.LEVELS),
        help="Level to enforce.",
    ),
    version: str = POLICY_VERSION,
    old_version: str = OLD_VERSION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Say whether each object would be admitted at a level and policy version.

    A denied object shows the admission error upstream returns, e.g.
    violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (...), ...
    JSON: {"results": [{"source", "kind", "namespace", "name", "level", "version",
    "allowed", "message", "violations"}]}.

    Exit status: 0 every object allowed, 1 at least one denied, 2 usage or input error
    (unreadable file, malformed YAML or JSON, a field of the wrong type, a file with no
    object, input past the bounds: 8 MiB, 100 levels, alias expansion, 100-digit
    numbers; bad level or version), 3 a problem of the machine.

    Examples:

    \b
      tracer pss check deploy/ --level baseline
      tracer pss check nim.yaml --policy-version v1.30 -f json
      helm template nim ./charts/nim | tracer pss check -
    """
    version = preferred(version, old_version)
    pss.parse_level(level)
    pss.parse_version(version)
    loaded = _load(paths)
    results = [(obj, pss.evaluate(obj.pod_metadata, obj.pod_spec, level, version)) for obj in loaded.objects]
    if fmt is OutputFormat.json:
        print_json([_check_record(obj, evaluation) for obj, evaluation in results])
    else:
        for obj, evaluation in results:
            typer.echo(f"{_label(obj)}: {'allowed' if evaluation.allowed else evaluation.message}")
    raise typer.Exit(EXIT_OK if all(e.allowed for _, e in results) else EXIT_FINDINGS)


@pss_app.command("level")
def level(
    paths: list[Path] = PATHS,
    version: str = POLICY_VERSION,
    old_version: str = OLD_VERSION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Show the strictest level each object meets, and what keeps it from the next one.

    Text lines read `SOURCE: Kind/namespace/name: baseline (restricted: violates ...)`.
    JSON records carry "level" and "blocked_by" (the failed evaluation of the next
    stricter level, or null when the object meets restricted).

    Exit status: 0 ok, 2 usage or input error (as for `check`), 3 a problem of the machine.

    Examples:

    \b
      tracer pss level deploy/
      kubectl get deploy -n nim -o yaml | tracer pss level - -f json
    """
    version = preferred(version, old_version)
    pss.parse_version(version)
    loaded = _load(paths)
    results = [(obj, *pss.strictest_level(obj.pod_metadata, obj.pod_spec, version)) for obj in loaded.objects]
    if fmt is OutputFormat.json:
        print_json([_level_record(obj, met, blocked, version) for obj, met, blocked in results])
    else:
        for obj, met, blocked in results:
            why = f" ({blocked.level}: {blocked.message})" if blocked else ""
            typer.echo(f"{_label(obj)}: {met}{why}")
    raise typer.Exit(EXIT_OK)


def _load(paths: list[Path]) -> LoadResult:
    loaded = load_manifests(input_paths(paths))
    for skipped in loaded.skipped:
        typer.echo(f"skipped: {skipped.source}: {skipped.kind}/{skipped.name} (runs no pod)", err=True)
    return loaded


def _label(obj: LoadedObject) -> str:
    where = f"{obj.namespace}/" if obj.namespace else ""
    return f"{obj.source}: {obj.kind}/{where}{obj.name}"


def _identity(obj: LoadedObject) -> dict:
    return {"source": obj.source, "kind": obj.kind, "namespace": obj.namespace, "name": obj.name}


def _evaluation_record(evaluation: pss.Evaluation) -> dict:
    return {
        "level": evaluation.level,
        "version": evaluation.version,
        "allowed": evaluation.allowed,
        "message": evaluation.message,
        "violations": [{"check": v.check, "reason": v.reason, "detail": v.detail} for v in evaluation.violations],
    }


def _check_record(obj: LoadedObject, evaluation: pss.Evaluation) -> dict:
    return {**_identity(obj), **_evaluation_record(evaluation)}


def _level_record(obj: LoadedObject, met: str, blocked: pss.Evaluation | None, version: str) -> dict:
    return {
        **_identity(obj),
        "level": met,
        "version": str(pss.parse_version(version)),
        "blocked_by": _evaluation_record(blocked) if blocked else None,
    }


def print_json(results: list[dict]) -> None:
    typer.echo(to_json({"results": results}).decode(), nl=False)


app.add_typer(pss_app, name="pss")
