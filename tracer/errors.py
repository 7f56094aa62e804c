"""The errors a user sees: one line that names what failed and the problem.

InputError is the user's to fix (exit 2); MachineError is the machine's: runc, BPF,
cgroups, a full or read-only disk, a missing tool (exit 3). The exit codes of every command
are defined here, once.
"""

from __future__ import annotations

import os

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_MACHINE = 0, 1, 2, 3  # findings: a refused syscall, a denied pod, ...


class TracerError(Exception):
    """A failure the command line reports as one line `error: SOURCE: PROBLEM`."""

    exit_code = EXIT_MACHINE

    def __init__(self, source: str | os.PathLike | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


class InputError(TracerError):
    """Bad input from the user: exit code 2, one clear line."""

    exit_code = EXIT_INPUT


class MachineError(TracerError):
    """The machine failed us (runc, BPF, cgroups, disk, a missing tool): exit code 3."""

    exit_code = EXIT_MACHINE
