"""The syscall chart: an inline SVG horizontal bar chart, one row per syscall, most called first,
one bar per profiled phase on a log scale (calls span six orders of magnitude, a linear axis would
show three bars and sixty slivers). Rare syscalls have their name in red with a marker; calls the
profile refuses are struck through. Every text comes from the inputs and is escaped.
"""

from __future__ import annotations

import math
from html import escape

from tracer.report.model import SyscallActivity, SyscallBar

PHASE_COLOURS = {"handover": "#9aa0a6", "startup": "#1a73e8", "load": "#e8710a"}
RARE_COLOUR = "#c5221f"

LABEL_WIDTH = 150
PLOT_WIDTH = 860
COUNT_WIDTH = 70
BAR_HEIGHT = 6
BAR_GAP = 1
ROW_GAP = 5
TOP = 46
AXIS_FLOOR = 0.5  # the axis starts at half a call, so one call still draws a visible bar


def axis_top(largest: int) -> int:
    """The power of ten at or above the largest count."""
    return 10 ** max(1, math.ceil(math.log10(max(largest, 1))))


def bar_length(count: int, top: int) -> float:
    if count <= 0:
        return 0.0
    return PLOT_WIDTH * math.log10(count / AXIS_FLOOR) / math.log10(top / AXIS_FLOOR)


def tick_label(value: int) -> str:
    for divisor, suffix in ((1_000_000, "M"), (1_000, "k")):
        if value >= divisor:
            return f"{value // divisor}{suffix}"
    return str(value)


def row_height(phase_count: int) -> int:
    return phase_count * (BAR_HEIGHT + BAR_GAP) + ROW_GAP


def legend(phases: tuple[str, ...]) -> list[str]:
    parts, x = [], LABEL_WIDTH
    for phase in phases:
        parts.append(
            f'<rect x="{x}" y="8" width="12" height="12" fill="{PHASE_COLOURS.get(phase, "#5f6368")}"/>'
            f'<text x="{x + 17}" y="18" class="lg">{escape(phase)}</text>'
        )
        x += 110
    parts.append(
        f'<text x="{x}" y="18" class="lg" style="fill:{RARE_COLOUR};font-weight:bold">\u25c6 rare</text>'
        f'<text x="{x + 80}" y="18" class="lg" text-decoration="line-through">refused by the profile</text>'
    )
    return parts


def axis(top: int, height: int) -> list[str]:
    parts = []
    value = 1
    while value <= top:
        x = LABEL_WIDTH + bar_length(value, top)
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{height}" class="grid"/>'
            f'<text x="{x:.1f}" y="{TOP - 10}" class="tick" text-anchor="middle">{tick_label(value)}</text>'
        )
        value *= 10
    return parts


def syscall_row(bar: SyscallBar, phases: tuple[str, ...], y: float, top: int) -> list[str]:
    name = escape(bar.name)
    label_y = y + len(phases) * (BAR_HEIGHT + BAR_GAP) / 2 + 3.5
    style = f' style="fill:{RARE_COLOUR};font-weight:bold"' if bar.rare else ""
    strike = ' text-decoration="line-through"' if not bar.allowed else ""
    marker = "\u25c6 " if bar.rare else ""
    parts = [
        f'<text x="{LABEL_WIDTH - 6}" y="{label_y:.1f}" class="name" text-anchor="end"{style}{strike}>'
        f"{marker}{name}</text>"
    ]
    for index, phase in enumerate(phases):
        count = bar.calls.get(phase, 0)
        if not count:
            continue
        bar_y = y + index * (BAR_HEIGHT + BAR_GAP)
        width = bar_length(count, top)
        parts.append(
            f'<rect x="{LABEL_WIDTH}" y="{bar_y:.1f}" width="{width:.1f}" height="{BAR_HEIGHT}" '
            f'fill="{PHASE_COLOURS.get(phase, "#5f6368")}"><title>{name}: {count:,} calls in {escape(phase)}'
            f"</title></rect>"
        )
    parts.append(f'<text x="{LABEL_WIDTH + PLOT_WIDTH + 6}" y="{label_y:.1f}" class="count">{bar.total:,}</text>')
    return parts


def syscall_chart_svg(activity: SyscallActivity) -> str:
    """The chart as an <svg> element sized to its rows (viewBox, so it scales to the page)."""
    phases = activity.phases or ("startup", "load")
    top = axis_top(max((count for bar in activity.bars for count in bar.calls.values()), default=1))
    step = row_height(len(phases))
    height = TOP + step * len(activity.bars) + 4
    width = LABEL_WIDTH + PLOT_WIDTH + COUNT_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="calls per syscall and phase, log scale" class="chart">',
        "<style>.name,.count,.tick,.lg{font:11px sans-serif;fill:#202124}.tick{fill:#5f6368;font-size:10px}"
        ".grid{stroke:#dadce0;stroke-width:1}</style>",
    ]
    parts += legend(phases)
    parts += axis(top, height - 4)
    for row, bar in enumerate(activity.bars):
        parts += syscall_row(bar, phases, TOP + row * step, top)
    parts.append("</svg>")
    return "".join(parts)
