"""The confinements a profile replaces, by name: what `--against` accepts.

"The runtime default" is not one profile. Kubernetes `RuntimeDefault` is the container
runtime's built-in filter, and containerd computes it in Go per container from its
capabilities and version: 1.6 and 1.7 allow `io_uring_*`, 2.x refuses them (as Docker's
current default does). Each is shipped here in Docker's format, generated from containerd's
own `contrib/seccomp.DefaultProfile` and checked against it (`scripts/gen-runtime-defaults`,
`data/README.md`), so one evaluator (`filter.filter_from_docker`) judges them all.

- `runtime-default`: Docker's current default profile (what `docker run` applies);
- `containerd-VERSION`: containerd's RuntimeDefault of that version, or the newest shipped
  version that starts with it (`containerd-1.6` is the newest 1.6.x here, `containerd-2` 2.x);
- `unconfined`: no filter at all;
- anything else: a profile FILE, in the OCI or Docker format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tracer.errors import InputError
from tracer.files import read_json
from tracer.profile.filter import DOCKER_DEFAULT, is_docker_format, load_docker_default

DATA = DOCKER_DEFAULT.parent
CONTAINERD_DEFAULT = re.compile(r"containerd-(\d+(?:\.\d+)*)-default-seccomp\.json")
UNCONFINED_PROFILE = {"defaultAction": "SCMP_ACT_ALLOW"}


@dataclass(frozen=True)
class Baseline:
    document: dict  # a seccomp profile, OCI or Docker format
    name: str  # what a reader is told it is; {scope} stands for the capabilities and architecture
    source: str  # the file it came from, for error messages

    def named_for(self, capabilities: list[str], arch: str) -> str:
        return self.name.format(scope=f"{', '.join(capabilities) or 'no capabilities'}, {arch}")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def containerd_defaults() -> dict[str, Path]:
    """Every shipped containerd default, by version, oldest first."""
    found = {m[1]: path for path in DATA.iterdir() if (m := CONTAINERD_DEFAULT.fullmatch(path.name))}
    return dict(sorted(found.items(), key=lambda item: version_key(item[0])))


def baseline_names() -> list[str]:
    return ["runtime-default", *(f"containerd-{version}" for version in containerd_defaults()), "unconfined"]


def containerd_default(wanted: str) -> tuple[str, Path]:
    """The newest shipped version equal to WANTED or starting with it (1.6 -> 1.6.38)."""
    matching = [v for v in containerd_defaults() if v == wanted or v.startswith(wanted + ".")]
    if not matching:
        known = ", ".join(f"containerd-{v}" for v in containerd_defaults())
        raise InputError(f"containerd-{wanted}", f"no containerd default is shipped for that version (known: {known})")
    version = matching[-1]
    return version, containerd_defaults()[version]


def load_baseline(against: str) -> Baseline:
    """The named baseline, or the profile file AGAINST."""
    if against == "runtime-default":
        return Baseline(
            load_docker_default(),
            "the runtime default (Docker's default profile for {scope})",
            str(DOCKER_DEFAULT),
        )
    if against == "unconfined":
        return Baseline(UNCONFINED_PROFILE, "unconfined (no seccomp filter)", against)
    if against.startswith("containerd-") and not Path(against).exists():
        version, path = containerd_default(against.removeprefix("containerd-"))
        return Baseline(
            read_json(path, "a Docker seccomp profile"),
            f"containerd {version}'s RuntimeDefault (for {{scope}})",
            str(path),
        )
    document = read_json(against, "a seccomp profile")
    if not isinstance(document, dict) or "defaultAction" not in document:
        raise InputError(
            against,
            "not a seccomp profile (no defaultAction): expected "
            f"{', '.join(baseline_names())}, or an OCI or Docker-format profile",
        )
    literal = against.replace("{", "{{").replace("}", "}}")
    return Baseline(document, f"{literal} (for {{scope}})" if is_docker_format(document) else literal, against)
