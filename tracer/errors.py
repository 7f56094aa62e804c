"""The error a user can fix: one line that names the file and the problem (exit 2)."""

from __future__ import annotations

import os


class InputError(Exception):
    """Bad input from the user: exit code 2, one clear line."""

    def __init__(self, source: str | os.PathLike | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)
