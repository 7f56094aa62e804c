"""The runc versions the runtime-sensitive live tests run on: Debian's (the one on PATH) and
the current upstream releases that `scripts/build-tools` builds from tools/ (cached outside
the clone; the first build takes about a minute a version on a 2-core machine)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from support.live import require_live
from support.paths import REPO

BUILT_RUNC = ("runc-v1.2", "runc-v1.5")


@dataclass(frozen=True)
class Runtime:
    name: str
    bin_dir: Path | None  # None: the runc already on PATH (Debian's)

    @property
    def runc(self) -> str:
        return str(self.bin_dir / "runc") if self.bin_dir else shutil.which("runc")

    @property
    def version(self) -> str:
        return subprocess.run([self.runc, "--version"], capture_output=True, text=True, check=True).stdout.split()[2]

    def path_env(self, path: str) -> str:
        """PATH with this runtime's runc first."""
        return f"{self.bin_dir}:{path}" if self.bin_dir else path


def runtime(name: str) -> Runtime:
    if name == "debian":
        return Runtime(name, None)
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        require_live("Go is not installed: the built runtimes (scripts/build-tools) need it")
    done = subprocess.run([str(REPO / "scripts/build-tools"), "--path", name], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"scripts/build-tools --path {name} failed:\n{done.stderr}")
    return Runtime(name, Path(done.stdout.strip()))
