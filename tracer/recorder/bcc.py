"""Find bcc's Python module from the project's own virtual environment.

bcc ships only as an OS package (python3-bpfcc) in the system's dist-packages. Adding that
whole directory to sys.path would pull every other system package into the venv, so we load
the `bcc` package alone from where the OS put it. bcc is pure Python over libbcc (ctypes),
so it works under any Python 3 the venv uses.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SYSTEM_BCC_DIRS = (
    "/usr/lib/python3/dist-packages/bcc",
    "/usr/lib/python3/site-packages/bcc",
    "/usr/local/lib/python3/dist-packages/bcc",
)


class BccUnavailable(RuntimeError):
    pass


def import_bcc():
    try:
        import bcc  # noqa: PLC0415  (a venv that already has it, or system Python)

        return bcc
    except ImportError:
        pass
    for candidate in map(Path, SYSTEM_BCC_DIRS):
        init = candidate / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location("bcc", init, submodule_search_locations=[str(candidate)])
            module = importlib.util.module_from_spec(spec)
            sys.modules["bcc"] = module
            try:
                spec.loader.exec_module(module)
            except Exception as err:  # libbcc missing or broken
                del sys.modules["bcc"]
                raise BccUnavailable(f"bcc at {candidate} failed to load: {err}") from err
            return module
    raise BccUnavailable("bcc is not installed (apt-get install python3-bpfcc; scripts/setup does it)")
