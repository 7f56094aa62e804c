"""`tracer report` in a real browser: headless Chromium renders the mini-NIM's page, the screenshot
is a drawn page (not blank, the chart's bars in their colours) and the rendered text carries the
key figures. Needs Debian's chromium (scripts/setup installs it): without it the tests skip with
that reason, and fail under TRACER_REQUIRE_LIVE=1.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from headless import find_chromium, rendered_dom, screenshot
from pngtools import distinct_colours, read_png

from support.live import require_live
from support.paths import FIXTURES, REPO
from support.report_inputs import HOSTILE, hostile_inputs, page
from tracer.cli import main
from tracer.report.chart import PHASE_COLOURS
from tracer.report.model import build_report

MINI_NIM = REPO / "profiles/mini-nim"
MINI_NIM_TRACE = FIXTURES / "mini-nim.trace.json"
MINI_NIM_MANIFEST = REPO / "tracer/embedded/mininim/deployment.yaml"
WIDTH, HEIGHT = 1280, 2400


@pytest.fixture(scope="module")
def browser(live) -> str:
    found = find_chromium()
    if found is None:
        require_live("chromium is not installed (scripts/setup installs Debian's chromium package)")
    return found


def pixels_of(image: np.ndarray, colour: str) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], np.uint8)
    return int((image[:, :, :3] == rgb).all(axis=2).sum())


def render(browser: str, page_path, what: str, *options: str):
    try:
        return what(browser, page_path, *options)
    except subprocess.CalledProcessError as err:
        pytest.fail(f"chromium failed ({err.returncode}): {err.stderr[-2000:]}")


def test_mini_nim_report_renders(browser, tmp_path):
    html = tmp_path / "report.html"
    args = [str(MINI_NIM), "--trace", str(MINI_NIM_TRACE), "--manifest", str(MINI_NIM_MANIFEST)]
    assert main(["report", *args, "--out", str(html)]) == 0
    expected = build_report(MINI_NIM, MINI_NIM_TRACE, MINI_NIM_MANIFEST)

    png = tmp_path / "report.png"
    render(browser, html, screenshot, png, WIDTH, HEIGHT)
    image = read_png(png)
    assert image.shape[:2] == (HEIGHT, WIDTH)
    assert distinct_colours(image) > 100, "a page of text, cards and a chart has many anti-aliased colours"
    white = (image[:, :, :3] == 255).all(axis=2).mean()
    assert 0.4 < white < 0.98, f"{white:.0%} of the screenshot is white"
    # The chart's bars are drawn in the phase colours (solid fills, so exact pixel values).
    for phase in ("startup", "load"):
        assert pixels_of(image, PHASE_COLOURS[phase]) > 1000, f"no {phase} bars in the screenshot"

    text = page(render(browser, html, rendered_dom)).joined
    comparison, activity = expected.runtime_default, expected.activity
    assert f"{comparison.allowed} allowed; the runtime default allows {comparison.baseline}" in text
    assert f"{len(activity.bars)} syscalls, {activity.total_calls:,} calls" in text
    assert "none added (drop ALL)" in text and "CAP_SYS_ADMIN" in text
    assert "T1611" in text and "Escape to Host" in text
    assert "baseline \u2192 restricted" in text
    assert "nothing lost" in text


def test_hostile_names_stay_text_in_the_browser(browser, tmp_path):
    profile, trace, manifest = hostile_inputs(tmp_path)
    html = tmp_path / "hostile.html"
    assert main(["report", str(profile), "--trace", str(trace), "--manifest", str(manifest), "--out", str(html)]) == 0
    dom = render(browser, html, rendered_dom)
    assert "<script" not in dom.lower()
    assert f"Deployment/{HOSTILE}" in page(dom).joined
