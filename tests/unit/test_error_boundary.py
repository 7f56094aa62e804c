"""One error boundary (tracer.cli.main): every failure is one line naming what failed, and the
exit code says whose it is: 1 findings, 2 usage or input, 3 the machine."""

from __future__ import annotations

import pytest

from support.paths import FIXTURES, REPO
from tracer.cli import main
from tracer.cli.app import app
from tracer.errors import MachineError

TRACE = str(FIXTURES / "python-chown.trace.json")


@pytest.fixture
def broken_command():
    """A command whose body fails with what no command expects."""

    @app.command("broken-for-test", hidden=True)
    def broken() -> None:
        raise RuntimeError("an invariant did not hold\non two lines")

    yield "broken-for-test"
    app.registered_commands[:] = [c for c in app.registered_commands if c.name != "broken-for-test"]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_an_unexpected_exception_is_one_internal_line_exit_3(broken_command, capsys, monkeypatch):
    monkeypatch.delenv("TRACER_DEBUG", raising=False)
    assert main([broken_command]) == 3
    stderr = capsys.readouterr().err
    assert stderr == "error: internal: RuntimeError: an invariant did not hold; on two lines\n"


def test_tracer_debug_adds_the_traceback(broken_command, capsys, monkeypatch):
    monkeypatch.setenv("TRACER_DEBUG", "1")
    assert main([broken_command]) == 3
    stderr = capsys.readouterr().err
    assert "Traceback (most recent call last)" in stderr and 'raise RuntimeError("an invariant did not hold' in stderr
    assert stderr.endswith("error: internal: RuntimeError: an invariant did not hold; on two lines\n")


def test_a_machine_error_is_exit_3(capsys, monkeypatch):
    def fail(*_args, **_kwargs):
        raise MachineError("/dev/sdz", "cannot write: No space left on device")

    monkeypatch.setattr("tracer.trace.format.write_trace", fail)
    assert main(["merge", TRACE, TRACE, "--out", "/nonexistent/x.json"]) == 3
    assert error_lines(capsys.readouterr().err) == ["error: /dev/sdz: cannot write: No space left on device"]


@pytest.mark.parametrize("where", ["directory", "under a file"])
def test_an_impossible_output_path_is_one_line_exit_2(where, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path if where == "directory" else tmp_path / "file" / "merged.json"
    assert main(["merge", TRACE, TRACE, "--out", str(out)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line == (
        f"error: {out}: is a directory, expected a file to write"
        if where == "directory"
        else f"error: {out}: cannot be created: {tmp_path / 'file'} is not a directory"
    )


def test_usage_errors_stay_exit_2(capsys):
    assert main(["record", "--no-such-option"]) == 2
    assert main(["record", "--out", "x.json"]) == 2  # no target
    assert "choose exactly one target" in capsys.readouterr().err


def test_the_exit_codes_are_documented():
    readme = (REPO / "README.md").read_text()
    for code, meaning in (
        ("0", "ok"),
        ("1", "findings"),
        ("2", "usage or input error"),
        ("3", "a problem of the machine"),
    ):
        assert f"| {code} | {meaning}" in readme
