"""`tracer k8s`: write Kubernetes manifests and configuration."""

from __future__ import annotations

from pathlib import Path

import typer

from tracer.cli.app import (
    EXIT_FINDINGS,
    EXIT_STATUS,
    app,
    deprecated_alias,
    input_path,
    is_stdout,
    preferred,
    write_text_output,
)
from tracer.cli.helptext import TracerTyper
from tracer.kube import admission
from tracer.kube.yaml_out import to_yaml

k8s_app = TracerTyper(
    help=(
        "Write the Kubernetes objects that put a recorded profile into force. They are a "
        "hardened manifest, a Security Profiles Operator SeccompProfile, Pod Security "
        "namespace labels and the API server's admission configuration.\n\n" + EXIT_STATUS
    ),
)

OUT = typer.Option(
    None,
    "--out",
    "-o",
    metavar="FILE",
    help="Write the YAML to FILE (atomically); without it, or with -, to standard output.",
)


@k8s_app.command("namespace")
def namespace(
    name: str = typer.Argument(..., metavar="NAME", help="Namespace name (an RFC 1123 label)."),
    enforce: str = typer.Option(
        None, "--enforce", metavar="LEVEL", help="Level the API server enforces: pods that violate it are rejected."
    ),
    audit: str = typer.Option(
        None, "--audit", metavar="LEVEL", help="Level recorded as an audit annotation on violating requests."
    ),
    warn: str = typer.Option(
        None, "--warn", metavar="LEVEL", help="Level returned to the client as a warning on violating requests."
    ),
    version: str = typer.Option(
        "latest",
        "--policy-version",
        metavar="VERSION",
        help='Pod Security policy version pinned for every mode set: "latest" or "v1.N".',
    ),
    old_version: str = deprecated_alias("--version", "--policy-version", "VERSION"),
    out: Path = OUT,
) -> None:
    """Print a Namespace labelled for Pod Security admission.

    Sets pod-security.kubernetes.io/MODE and MODE-version for each MODE given
    (LEVEL is privileged, baseline or restricted). Values are validated as the API server
    validates the labels; at least one mode is required.

    Exit status: 0 ok, 2 invalid name, level or version, 3 a problem of the machine.

    Examples:

    \b
      tracer k8s namespace nim --enforce restricted --policy-version v1.30 | kubectl apply -f -
      tracer k8s namespace nim --enforce baseline --warn restricted --out nim-namespace.yaml
    """
    manifest = admission.namespace_manifest(
        name, enforce=enforce, audit=audit, warn=warn, version=preferred(version, old_version)
    )
    write_text_output(to_yaml(manifest), out)


@k8s_app.command("admission-config")
def admission_config(
    enforce: str = typer.Option(
        "baseline", "--enforce", metavar="LEVEL", help="Default enforce level for namespaces without labels."
    ),
    enforce_version: str = typer.Option(
        "latest", "--enforce-version", metavar="VERSION", help="Policy version of the enforce default."
    ),
    audit: str = typer.Option("restricted", "--audit", metavar="LEVEL", help="Default audit level."),
    audit_version: str = typer.Option(
        "latest", "--audit-version", metavar="VERSION", help="Policy version of the audit default."
    ),
    warn: str = typer.Option("restricted", "--warn", metavar="LEVEL", help="Default warn level."),
    warn_version: str = typer.Option(
        "latest", "--warn-version", metavar="VERSION", help="Policy version of the warn default."
    ),
    exempt_namespaces: list[str] = typer.Option(
        [], "--exempt-namespace", metavar="NAMESPACE", help="Namespace never checked (repeatable)."
    ),
    exempt_runtime_classes: list[str] = typer.Option(
        [], "--exempt-runtime-class", metavar="CLASS", help="RuntimeClass whose pods are never checked (repeatable)."
    ),
    exempt_users: list[str] = typer.Option(
        [], "--exempt-user", metavar="USER", help="Authenticated user whose requests are never checked (repeatable)."
    ),
    out: Path = OUT,
) -> None:
    """Print an AdmissionConfiguration for the API server's PodSecurity plugin.

    The apiserver.config.k8s.io/v1 AdmissionConfiguration embeds a
    pod-security.admission.config.k8s.io/v1 PodSecurityConfiguration with cluster-wide
    defaults (used where a namespace has no pod-security labels) and exemptions; pass it
    to kube-apiserver with --admission-control-config-file. The defaults follow the
    Kubernetes documentation example: enforce baseline, audit and warn restricted.

    It is validated as upstream's ValidatePodSecurityConfiguration does: valid levels and
    versions, exempt namespaces RFC 1123 labels, runtime classes RFC 1123 subdomains,
    no empty user names, no duplicates.

    Exit status: 0 ok, 2 invalid configuration, 3 a problem of the machine.

    Examples:

    \b
      tracer k8s admission-config --out /etc/kubernetes/pod-security.yaml
      tracer k8s admission-config --enforce restricted --exempt-namespace kube-system
    """
    pod_security = admission.pod_security_configuration(
        enforce=enforce,
        enforce_version=enforce_version,
        audit=audit,
        audit_version=audit_version,
        warn=warn,
        warn_version=warn_version,
        exempt_usernames=exempt_users,
        exempt_runtime_classes=exempt_runtime_classes,
        exempt_namespaces=exempt_namespaces,
    )
    write_text_output(to_yaml(admission.admission_configuration(pod_security)), out)


@k8s_app.command("harden")
def harden(
    manifest: Path = typer.Argument(
        ...,
        metavar="MANIFEST",
        help="YAML file: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, "
        "ReplicationController, Job, CronJob or a List of them; "
        "several documents allowed; - reads standard input.",
    ),
    profile: Path = typer.Option(
        ..., "--profile", metavar="DIR", help="Profile directory written by `tracer generate`."
    ),
    container: str = typer.Option(
        None,
        "--container",
        metavar="NAME",
        help="Harden only this container (app or init); default: the container "
        "the profile was recorded from (DIR/recording.json), else every app "
        "container of every pod template.",
    ),
    localhost_path: str = typer.Option(
        None,
        "--localhost-path",
        metavar="PATH",
        help="localhostProfile value, relative to the kubelet seccomp root "
        "/var/lib/kubelet/seccomp; default seccomp-tracer/NAME.json, NAME the name of DIR.",
    ),
    pss_version: str = typer.Option(
        "latest",
        "--policy-version",
        metavar="VERSION",
        help='Pod Security policy version for the report: "latest" or "v1.N".',
    ),
    old_pss_version: str = deprecated_alias("--pss-version", "--policy-version", "VERSION"),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="FILE",
        help="Write the hardened manifest to FILE (atomically); - writes it to standard "
        "output and the report to stderr.",
    ),
) -> None:
    """Apply a recorded profile to the containers of a Kubernetes manifest.

    The chosen containers: --container's; without it, the container the profile was
    recorded from (its name is in DIR/recording.json), the others left as they are; a
    profile that names none (or one the manifest lacks, said on stderr) hardens every
    app container.

    On each chosen container, sets securityContext.seccompProfile (type Localhost),
    capabilities (drop ALL, add the recorded set without the CAP_ prefix),
    allowPrivilegeEscalation false, runAsNonRoot true, runAsUser from the recording when
    the manifest sets none and the recording ran as non-root, and readOnlyRootFilesystem
    true only when DIR/recording.json shows no write outside the volumes (or a read-only
    root). Every other field, comment and the key order are kept.

    Prints, per object, the Pod Security level before and after, and what still keeps it
    from "restricted"; notes about fields left alone go to stderr.

    Exit status: 0 every hardened object meets "restricted", 1 some do not (FILE is
    still written), 2 bad MANIFEST or DIR, unknown container (nothing written), 3 a
    problem of the machine.

    Examples:

    \b
      tracer k8s harden nim-deployment.yaml --profile profiles/nim --out nim-hardened.yaml
      helm template nim ./charts/nim | tracer k8s harden - --profile profiles/nim --out - | kubectl apply -f -
    """
    from tracer.kube import harden as hardening
    from tracer.profile.directory import load_profile_dir

    to_stdout = is_stdout(out)
    result = hardening.harden_file(
        input_path(manifest),
        load_profile_dir(profile),
        None if to_stdout else out,
        container=container,
        localhost_profile=localhost_path,
        pss_version=preferred(pss_version, old_pss_version),
    )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for report in result.reports:
        typer.echo(
            f"{report.title}: containers {', '.join(report.containers)}: "
            f"Pod Security {report.level_before} -> {report.level_after}",
            err=to_stdout,
        )
        for check, detail in report.remaining:
            typer.echo(f"  restricted: {check}: {detail}", err=to_stdout)
    if to_stdout:
        write_text_output(result.text, out)
    else:
        typer.echo(f"wrote {out}")
    if not result.all_restricted:
        raise typer.Exit(EXIT_FINDINGS)


@k8s_app.command("seccompprofile")
def seccompprofile(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by `tracer generate`."),
    name: str = typer.Option(
        ..., "--name", metavar="NAME", help="SeccompProfile object name and profile file name (DNS-1123 subdomain)."
    ),
    namespace: str = typer.Option(
        "default",
        "--namespace",
        "-n",
        metavar="NS",
        help="With --spo-api v1beta1: the namespace of the SeccompProfile object (v1 objects are cluster-scoped).",
    ),
    spo_api: str = typer.Option(
        "v1",
        "--spo-api",
        metavar="VERSION",
        help="v1: today's operator (cluster-scoped, operator/NAME.json); v1beta1: older operators (namespaced, operator/NS/NAME.json).",
    ),
    out_dir: Path = typer.Option(None, "--out-dir", metavar="OUT", help="Output directory; default DIR/k8s."),
) -> None:
    """Write DIR's seccomp profile in the two forms Kubernetes nodes load.

    OUT/NAME.seccompprofile.yaml: a Security Profiles Operator SeccompProfile
    (security-profiles-operator.x-k8s.io/v1, cluster-scoped); the operator installs it on
    every node and pods use localhostProfile operator/NAME.json. --spo-api v1beta1 writes
    the form older operators take: namespaced, localhostProfile operator/NS/NAME.json.

    OUT/NAME.json: the plain OCI profile (defaultAction, defaultErrnoRet, architectures,
    syscalls) to copy to /var/lib/kubelet/seccomp/seccomp-tracer/NAME.json on every node;
    pods use localhostProfile seccomp-tracer/NAME.json.

    Prints both localhostProfile values.

    Exit status: 0 ok, 2 bad DIR, NAME or NS (nothing written), 3 a problem of the machine.

    Examples:

    \b
      tracer k8s seccompprofile profiles/nim --name nim-llm
      tracer k8s seccompprofile profiles/nim --name nim-llm --spo-api v1beta1 --namespace nim
      tracer k8s seccompprofile profiles/nim --name nim-llm --out-dir deploy/seccomp
    """
    from tracer.kube.seccompprofile import write_install_files
    from tracer.profile.directory import load_profile_dir

    loaded = load_profile_dir(profile)
    files = write_install_files(loaded, name, namespace, out_dir or loaded.path / "k8s", spo_api)
    if spo_api == "v1" and namespace != "default":
        typer.echo(
            f"warning: --namespace {namespace} is not used: v1 SeccompProfiles are cluster-scoped "
            "(--spo-api v1beta1 for an operator that takes namespaced ones)",
            err=True,
        )
    for warning in files.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {files.seccomp_profile_object}  (kubectl apply -f; needs the Security Profiles Operator)")
    typer.echo(f"  localhostProfile: {files.spo_localhost_profile}")
    typer.echo(f"wrote {files.plain_profile}  (copy to {files.plain_install_path} on every node)")
    typer.echo(f"  localhostProfile: {files.plain_localhost_profile}")


app.add_typer(k8s_app, name="k8s")
