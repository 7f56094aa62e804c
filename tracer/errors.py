"""Errors the user sees as one line that names the file and the problem.

InputError: bad input or usage, which the user can fix (exit code 2).
MachineError: the machine cannot do it, e.g. a full file system (exit code 3).
"""

from __future__ import annotations

import os


class OneLineError(Exception):
    def __init__(self, source: str | os.PathLike | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


class InputError(OneLineError):
    """Bad input from the user: exit code 2, one clear line."""


class MachineError(OneLineError):
    """The machine failed us (no space left, an I/O error): exit code 3, one clear line."""
