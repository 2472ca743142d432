"""Two figures of a result, drawn as standalone SVG (styles inline, so the same markup reads the same in
a run directory and on the site): the reliability diagram of its confidences and, for the 8-way
Plutchik tasks, where its answers fell on the wheel.

`write_run_figures` writes them beside results.json, one file per (task, variant) that has them:
`calibration-<task>-<variant>.svg` and `wheel-<task>-<variant>.svg`. Every label goes through
`markupsafe.escape`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from ..schema import Calibration, RunResults
from ..wheel import PETALS, wheel_distance

SOURCE_COLOURS = {"loglikelihood": "#1f6feb", "top_logprobs": "#8250df", "verbalised": "#d4a72c"}
DISTANCE_COLOURS = ("#2da44e", "#2da44e", "#bf8700", "#e16f24", "#cf222e")  # wheel distance 0..4
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def reliability_diagram(calibration: Mapping[str, Calibration], title: str) -> Markup:
    """Accuracy against confidence per equal-mass bin, one series per confidence source, the diagonal
    being perfect calibration; a point's area follows its bin's size."""
    size, left, top = 300, 48, 34
    width, height = left + size + 270, top + size + 46

    def xy(conf: float, acc: float) -> tuple[float, float]:
        return left + conf * size, top + (1 - acc) * size

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart reliability" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="{left}" y="18" {FONT} font-weight="600">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#8c959f"/>',
        f'<line x1="{left}" y1="{top + size}" x2="{left + size}" y2="{top}" stroke="#8c959f" '
        'stroke-dasharray="4 4"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, y = xy(tick, tick)
        parts.append(
            f'<text x="{x:.1f}" y="{top + size + 16}" {FONT} text-anchor="middle">{tick:g}</text>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" {FONT} text-anchor="end">{tick:g}</text>'
        )
    parts.append(
        f'<text x="{left + size / 2}" y="{top + size + 34}" {FONT} text-anchor="middle">confidence</text>'
        f'<text x="14" y="{top + size / 2}" {FONT} text-anchor="middle" '
        f'transform="rotate(-90 14 {top + size / 2})">accuracy</text>'
    )
    for row, (source, block) in enumerate(calibration.items()):
        colour = SOURCE_COLOURS.get(source, "#57606a")
        bins = block.get("reliability") or []
        biggest = max([b["n"] for b in bins] or [1])
        points = [xy(b["confidence"], b["accuracy"]) for b in bins]
        if len(points) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))
            parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for b, (x, y) in zip(bins, points, strict=True):
            radius = 3 + 6 * math.sqrt(b["n"] / biggest)
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{colour}" fill-opacity="0.55" '
                f'stroke="{colour}"><title>{escape(source)}: confidence {b["confidence"]:.3f}, accuracy '
                f"{b['accuracy']:.3f}, n={b['n']}</title></circle>"
            )
        ece: Mapping[str, Any] = block.get("ece") or {}
        label = f"{source} (n={block['n']})"
        if isinstance(ece.get("value"), (int, float)) and math.isfinite(ece["value"]):
            label += f" ECE {ece['value']:.3f}"
        y = top + 10 + row * 20
        parts.append(
            f'<circle cx="{left + size + 18}" cy="{y}" r="5" fill="{colour}"/>'
            f'<text x="{left + size + 28}" y="{y + 4}" {FONT}>{escape(label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def wheel_confusion(confusion: Mapping[str, Mapping[str, int]], title: str) -> Markup:
    """The eight petals on a circle in Plutchik's order; each petal's disc is as dark as the share of
    its items answered right, and each arrow goes from a gold emotion to a wrong answer, as wide as the
    count, coloured by how far round the wheel the miss was (green adjacent, red opposite)."""
    width, height, cx, cy, radius = 520, 450, 260, 230, 160
    where = {
        p: (cx + radius * math.sin(2 * math.pi * i / 8), cy - radius * math.cos(2 * math.pi * i / 8))
        for i, p in enumerate(PETALS)
    }
    misses = [
        (g, p, int(n))
        for g, row in confusion.items()
        for p, n in row.items()
        if g in where and p in where and p != g and n
    ]
    most = max([n for _, _, n in misses] or [1])
    uid = hashlib.sha256(title.encode()).hexdigest()[:8]  # marker ids unique on a page with several wheels
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart wheel" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="10" y="18" {FONT} font-weight="600">{escape(title)}</text>',
    ]
    for d, colour in enumerate(DISTANCE_COLOURS):
        parts.append(
            f'<marker id="arrow{d}-{uid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
            f'markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    for gold, pred, n in misses:
        (x1, y1), (x2, y2) = where[gold], where[pred]
        d = wheel_distance(gold, pred)
        bend = 0.35 if d < 4 else 0.0
        qx, qy = (x1 + x2) / 2 + (cx - (x1 + x2) / 2) * bend, (y1 + y2) / 2 + (cy - (y1 + y2) / 2) * bend
        x2s, y2s = _towards(x2, y2, qx, qy, 24)
        parts.append(
            f'<path d="M{x1:.1f},{y1:.1f} Q{qx:.1f},{qy:.1f} {x2s:.1f},{y2s:.1f}" fill="none" '
            f'stroke="{DISTANCE_COLOURS[d]}" stroke-opacity="0.7" stroke-width="{1 + 5 * n / most:.1f}" '
            f'marker-end="url(#arrow{d}-{uid})"><title>{escape(gold)} answered {escape(pred)}: {n} '
            f"(wheel distance {d})</title></path>"
        )
    for petal, (x, y) in where.items():
        row = confusion.get(petal) or {}
        total = sum(int(v) for v in row.values())
        right = int(row.get(petal, 0))
        share = right / total if total else 0.0
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="22" fill="#1f6feb" fill-opacity="{0.08 + 0.8 * share:.2f}" '
            f'stroke="#1f6feb"><title>{escape(petal)}: {right}/{total} right</title></circle>'
            f'<text x="{x:.1f}" y="{y + 4:.1f}" {FONT} text-anchor="middle">{right}/{total}</text>'
        )
        lx, ly = _towards(x, y, cx, cy, -30)
        anchor = "middle" if abs(lx - cx) < 1 else ("start" if lx > cx else "end")
        parts.append(
            f'<text x="{lx:.1f}" y="{ly + 4:.1f}" {FONT} text-anchor="{anchor}">{escape(petal)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def write_run_figures(run_dir: str | Path, results: RunResults) -> list[Path]:
    """The figures of every (task, variant) that has them, written into the run directory."""
    written = []
    for entry in results["results"]:
        label = f"{entry['task']} · {entry['variant']}"
        for name, figure in figures(label, entry.get("calibration") or {}, entry["details"]).items():
            path = Path(run_dir) / f"{name}-{_file_part(entry['task'])}-{_file_part(entry['variant'])}.svg"
            path.write_text(str(figure), encoding="utf-8")
            written.append(path)
    return written


def figures(
    label: str, calibration: Mapping[str, Calibration], details: Mapping[str, Any]
) -> dict[str, Markup]:
    """A result's figures: `calibration` when it has confidences, `wheel` when its task reports where
    its answers fell on Plutchik's wheel (`details.wheel.confusion`)."""
    out = {}
    if calibration:
        out["calibration"] = reliability_diagram(calibration, f"{label}: reliability")
    wheel = details.get("wheel")
    if isinstance(wheel, dict) and isinstance(wheel.get("confusion"), dict):
        out["wheel"] = wheel_confusion(wheel["confusion"], f"{label}: answers on Plutchik's wheel")
    return out


def _towards(x: float, y: float, tx: float, ty: float, step: float) -> tuple[float, float]:
    """The point `step` from (x, y) towards (tx, ty) (a negative step goes away from it)."""
    dx, dy = tx - x, ty - y
    length = math.hypot(dx, dy) or 1.0
    return x + dx / length * step, y + dy / length * step


def _file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "x"
