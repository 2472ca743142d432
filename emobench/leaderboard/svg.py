"""Inline SVG charts, drawn here in Python so that the site needs no charting library and makes no
request: horizontal bars with 95% CI whiskers, used for per-task scores, variant deltas and the ESConv
strategy preferences. Every label goes through `markupsafe.escape`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeGuard

from markupsafe import Markup, escape

WIDTH, LABEL_W, ROW_H, PAD = 680, 210, 24, 28


@dataclass
class Bar:
    label: str
    value: float | None
    lo: float | None = None
    hi: float | None = None
    muted: bool = False  # drawn grey: not ranked (incomparable) or not significant


def _finite(x: float | None) -> TypeGuard[float]:
    return x is not None and math.isfinite(x)


def bar_chart(
    bars: list[Bar],
    domain: tuple[float, float] | None = None,
    fmt: str = ".3f",
    title: str = "",
    zero: float | None = None,
) -> Markup:
    """Horizontal bars from `zero` (default: the domain's low end) to each value, with CI whiskers."""
    points = [x for b in bars for x in (b.value, b.lo, b.hi) if _finite(x)]
    lo_d, hi_d = domain or (min([0.0, *points]), max([1e-9, *points]))
    if zero is not None:
        lo_d, hi_d = min(lo_d, zero), max(hi_d, zero)
    span = (hi_d - lo_d) or 1.0
    base = lo_d if zero is None else zero
    plot_w = WIDTH - LABEL_W - 70

    def x(v: float) -> float:
        return LABEL_W + (min(max(v, lo_d), hi_d) - lo_d) / span * plot_w

    height = PAD * 2 + ROW_H * max(1, len(bars))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}"><title>{escape(title)}</title>'
    ]
    for tick in (lo_d, (lo_d + hi_d) / 2, hi_d):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{PAD - 6}" y2="{height - PAD + 4}" '
            f'class="grid"/><text x="{x(tick):.1f}" y="{height - 8}" class="tick">{tick:{fmt}}</text>'
        )
    if zero is not None:
        parts.append(
            f'<line x1="{x(zero):.1f}" x2="{x(zero):.1f}" y1="{PAD - 6}" y2="{height - PAD + 4}" class="zero"/>'
        )
    for i, b in enumerate(bars):
        y = PAD + i * ROW_H
        label = b.label if len(b.label) <= 30 else b.label[:29] + "…"
        parts.append(f'<text x="{LABEL_W - 8}" y="{y + 15}" class="label">{escape(label)}</text>')
        if not _finite(b.value):
            parts.append(f'<text x="{LABEL_W + 4}" y="{y + 15}" class="value">no score</text>')
            continue
        x0, x1 = sorted((x(base), x(b.value)))
        cls = "bar muted" if b.muted else "bar"
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(1.0, x1 - x0):.1f}" height="{ROW_H - 8}" class="{cls}"/>'
        )
        if _finite(b.lo) and _finite(b.hi):
            ym = y + ROW_H / 2
            parts.append(
                f'<path d="M{x(b.lo):.1f},{ym} H{x(b.hi):.1f} M{x(b.lo):.1f},{ym - 5} V{ym + 5} '
                f'M{x(b.hi):.1f},{ym - 5} V{ym + 5}" class="whisker"/>'
            )
        right = max(x(b.value), x(b.hi) if _finite(b.hi) else 0)
        parts.append(f'<text x="{right + 6:.1f}" y="{y + 15}" class="value">{b.value:{fmt}}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
