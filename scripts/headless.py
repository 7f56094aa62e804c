"""Headless Chromium, as the report's browser test and scripts/report-screenshot drive it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


def chromium(browser: str, page: Path, *options: str, timeout: int = 60) -> subprocess.CompletedProcess:
    """Run the browser headless on a file:// page with a throw-away profile directory."""
    with tempfile.TemporaryDirectory(prefix="tracer-chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--no-first-run",
            *options,
            page.resolve().as_uri(),
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)


def screenshot(browser: str, page: Path, png: Path, width: int = 1280, height: int = 2400) -> None:
    chromium(browser, page, f"--screenshot={png}", f"--window-size={width},{height}")
    if not png.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot at {png}")


def rendered_dom(browser: str, page: Path) -> str:
    return chromium(browser, page, "--dump-dom").stdout
