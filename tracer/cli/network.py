"""`tracer network`: observe a network namespace, and turn the surface into a NetworkPolicy."""

from __future__ import annotations

from pathlib import Path

import typer

from tracer.cli.app import (
    EXIT_MACHINE,
    EXIT_STATUS,
    FORMAT_OPTION,
    OutputFormat,
    app,
    input_path,
    print_json,
    write_text_output,
)
from tracer.cli.helptext import TracerTyper
from tracer.errors import InputError
from tracer.files import atomic_write_json, read_json
from tracer.kube.networkpolicy import network_policy, parse_pod_labels
from tracer.network.netns import ObservationError, pid_namespace_path
from tracer.network.observe import observe
from tracer.network.surface import NetworkSurface

network_app = TracerTyper(
    help=(
        "Observe a container's network surface and write the NetworkPolicy that allows only it. "
        "The surface is what listens in its network namespace (sock_diag), its interfaces and "
        "where it connects to.\n\n" + EXIT_STATUS
    ),
)
app.add_typer(network_app, name="network")


@network_app.command("observe")
def observe_command(
    namespace: str = typer.Argument(
        None, metavar="NETNS", help="A named namespace (under /run/netns) or a path such as /proc/PID/ns/net."
    ),
    pid: int = typer.Option(None, "--pid", metavar="PID", help="Observe the network namespace of process PID."),
    out: Path = typer.Option(None, "--out", metavar="FILE", help="Also write the surface as JSON to FILE."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Read the listening sockets, interfaces and unprivileged port limit of one network namespace.

    One instant: a listener opened and closed before this runs is not seen. Needs root
    (entering a namespace needs CAP_SYS_ADMIN).

    Exit status: 0 ok, 2 usage or input error, 3 a problem of the machine (not root, no
    sock_diag for a protocol).

    Examples:

    \b
      tracer network observe mininim-netns
      tracer network observe --pid 4242 --out surface.json -f json
    """
    if (namespace is None) == (pid is None):
        raise InputError(None, "give either NETNS or --pid")
    try:
        surface = observe(pid_namespace_path(pid) if pid is not None else namespace)
    except ObservationError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_MACHINE) from None
    if out is not None:
        atomic_write_json(out, surface.to_json())
    if fmt is OutputFormat.json:
        print_json(surface.to_json())
    else:
        typer.echo(surface_text(surface), nl=False)


@network_app.command("policy")
def policy_command(
    surface_file: Path = typer.Argument(
        ..., metavar="SURFACE", help="A network surface (observe --out) or a trace with a network section."
    ),
    name: str = typer.Option(..., "--name", metavar="NAME", help="The NetworkPolicy's name."),
    selectors: list[str] = typer.Option(
        ..., "--selector", metavar="KEY=VALUE", help="A label of the pods the policy applies to (repeat for several)."
    ),
    namespace: str = typer.Option(
        None, "--namespace", "-n", metavar="NS", help="The Kubernetes namespace of the policy and pods."
    ),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        metavar="FILE",
        help="Write the YAML to FILE (atomically); without it, or with -, to standard output.",
    ),
) -> None:
    """Write a NetworkPolicy: ingress only to the observed ports, egress only to the recorded destinations.

    Notes (loopback-only listeners left out, egress left open where destinations were not
    recorded, DNS) are written as comments in the YAML and on stderr. SURFACE may be - for
    standard input.

    Exit status: 0 ok, 2 usage or input error, 3 a problem of the machine (the output cannot
    be written).

    Examples:

    \b
      tracer network policy surface.json --name nim --selector app=nim -n nim
      tracer network policy mini-nim.trace.json --name nim --selector app=nim --out netpol.yaml
    """
    surface = load_surface(input_path(surface_file))
    policy = network_policy(surface, name, parse_pod_labels(selectors), namespace)
    write_text_output(policy.to_yaml(), out)
    for note in policy.notes:
        typer.echo(f"note: {note}", err=True)


def surface_text(surface: NetworkSurface) -> str:
    """Lines for people: listeners, interfaces, privileged ports, destinations."""
    lines = ["listening"]
    for s in surface.listening:
        reach = "loopback only" if surface.loopback_only(s) else "reachable"
        lines.append(f"  {s.describe():<40} {reach}")
    if not surface.listening:
        lines.append("  nothing")
    lines.append("interfaces")
    for i in surface.interfaces:
        traits = ", ".join(filter(None, ["up" if i.up else "down", "loopback" if i.loopback else "", i.kind]))
        lines.append(f"  {i.name:<16} {traits:<20} {' '.join(i.addresses) or '-'}")
    ports = surface.privileged_ports()
    lines.append(
        f"privileged ports (below {surface.unprivileged_port_start}, need CAP_NET_BIND_SERVICE): "
        f"{' '.join(map(str, ports)) or 'none'}"
    )
    if surface.destinations is None:
        lines.append("destinations not recorded")
    else:
        lines.append("destinations")
        lines.extend(f"  {d.describe():<40} {d.count}" for d in surface.destinations)
        if not surface.destinations:
            lines.append("  none")
    return "\n".join(lines) + "\n"


def load_surface(path: Path) -> NetworkSurface:
    """The surface in PATH: a surface document, or a trace's top-level `network` section."""
    data = read_json(path, "a network surface or a trace")
    if isinstance(data, dict) and "listening" not in data and "network" in data:
        if data["network"] is None:
            raise InputError(path, "the trace has no network section (network: null)")
        return NetworkSurface.from_json(data["network"], source=path, where="network")
    return NetworkSurface.from_json(data, source=path, where="surface")
