"""`--against` names: the runtime default of each containerd version shipped, as judged by the
one evaluator; which baseline a profile is compared with changes the verdict on io_uring."""

from __future__ import annotations

import pytest

from support.report_inputs import write_profile
from tracer.cli import main
from tracer.profile.baselines import baseline_names, containerd_defaults, load_baseline

IO_URING = ["io_uring_setup", "io_uring_enter", "io_uring_register"]
BASICS = ["read", "write", "exit_group", "rt_sigreturn"]


@pytest.fixture
def io_uring_profile(tmp_path):
    """A profile that allows io_uring, with no recorded evidence for it."""
    return write_profile(tmp_path / "profile", [{"names": BASICS + IO_URING, "action": "SCMP_ACT_ALLOW"}])


def risk(capsys, profile, against: str) -> tuple[int, str]:
    code = main(["risk", str(profile), "--against", against])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("against", ["containerd-1.6.20", "containerd-1.6", "containerd-1.7"])
def test_containerd_1_6_and_1_7_allow_io_uring_so_the_profile_is_not_wider(against, io_uring_profile, capsys):
    code, out = risk(capsys, io_uring_profile, against)
    assert code == 0, out
    assert f"containerd {against.removeprefix('containerd-')}" in out


@pytest.mark.parametrize("against", ["containerd-2", "runtime-default"])
def test_containerd_2_and_docker_refuse_io_uring_so_allowing_it_is_a_finding(against, io_uring_profile, capsys):
    code, out = risk(capsys, io_uring_profile, against)
    assert code == 1, out
    assert all(name in out for name in IO_URING)


def test_a_version_prefix_means_the_newest_shipped_version_of_that_line():
    newest_1_6 = max(
        (v for v in containerd_defaults() if v.startswith("1.6.")), key=lambda v: [int(p) for p in v.split(".")]
    )
    assert load_baseline("containerd-1.6").name.startswith(f"containerd {newest_1_6}'s")
    assert "containerd-1.6.20" in baseline_names() and baseline_names()[0] == "runtime-default"


def test_an_unknown_containerd_version_is_one_line_naming_the_known_ones(io_uring_profile, capsys):
    code, out = risk(capsys, io_uring_profile, "containerd-9.9")
    assert code == 2
    assert out.strip().splitlines() == [
        "error: containerd-9.9: no containerd default is shipped for that version (known: "
        + ", ".join(f"containerd-{v}" for v in containerd_defaults())
        + ")"
    ]
