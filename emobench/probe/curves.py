"""Layer curves as SVG: a metric per layer with its 95% CI as a band, and horizontal guides (chance,
the lexical floor). Drawn in Python like the leaderboard's bar charts (`emobench.leaderboard.svg`):
no charting library, no request to any host, every label escaped. Colours are SVG presentation
attributes, not style attributes, so the site's Content-Security-Policy (no inline styles) allows them
and the same file opens on its own from a run directory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

from markupsafe import Markup, escape

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 680, 300, 48, 190, 28, 40
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


@dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float | None]
    lo: Sequence[float | None] | None = None
    hi: Sequence[float | None] | None = None


@dataclass
class Guide:
    label: str
    y: float


def _ok(v: float | None) -> TypeGuard[float]:
    return v is not None and math.isfinite(v)


def line_chart(
    series: Sequence[Series],
    guides: Sequence[Guide] = (),
    title: str = "",
    x_label: str = "layer",
    domain: tuple[float, float] = (0.0, 1.0),
) -> Markup:
    xs = [x for s in series for x in s.x] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = domain
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1.0) * plot_w

    def py(y: float) -> float:
        return TOP + (1 - (min(max(y, y0), y1) - y0) / ((y1 - y0) or 1.0)) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11"><title>{escape(title)}</title>',
        f'<text x="{LEFT}" y="16" font-size="12" font-weight="bold">{escape(title)}</text>',
    ]
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>'
        )
    ticks = sorted(set(xs)) if len(set(xs)) <= 12 else [x0 + (x1 - x0) * k / 6 for k in range(7)]
    for x in ticks:
        parts.append(f'<text x="{px(x):.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{x:g}</text>')
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>'
    )
    legend_y = TOP + 4
    for g in guides:
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(g.y):.1f}" y2="{py(g.y):.1f}" stroke="#555" '
            f'stroke-dasharray="4 3"/><text x="{LEFT + 4}" y="{py(g.y) - 3:.1f}" fill="#555">'
            f"{escape(g.label)}</text>"
        )
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        if s.lo is not None and s.hi is not None:
            band = [(x, lo, hi) for x, lo, hi in zip(s.x, s.lo, s.hi, strict=True) if _ok(lo) and _ok(hi)]
            if band:
                outline = [f"{px(x):.1f},{py(hi):.1f}" for x, _, hi in band]
                outline += [f"{px(x):.1f},{py(lo):.1f}" for x, lo, _ in reversed(band)]
                parts.append(
                    f'<polygon points="{" ".join(outline)}" fill="{colour}" fill-opacity="0.15" stroke="none"/>'
                )
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(s.x, s.y, strict=True) if _ok(y))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        label = s.label if len(s.label) <= 28 else s.label[:27] + "…"
        parts.append(
            f'<rect x="{LEFT + plot_w + 6}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{LEFT + plot_w + 20}" y="{legend_y + 1}">{escape(label)}</text>'
        )
        legend_y += 15
    parts.append("</svg>")
    return Markup("".join(parts))
