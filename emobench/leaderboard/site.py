"""Render a collected Board as a static site: plain HTML files, one CSS and one JS file, inline SVG
charts. It opens from the file system or any static host and requests nothing from any other host.

Every text that comes from a run (model names, prompts, responses, parsed answers) is escaped by
jinja2's autoescape; the JSON embedded in index.html escapes `<`, `>` and `&` so that no `</script>`
inside the data can end its script element.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from .. import __version__
from ..frames import iter_samples
from .collect import Board, Entry
from .config import as_dict
from .figures import figures
from .probing import collect_probes, probing_page
from .svg import Bar, bar_chart

HERE = Path(__file__).resolve().parent
TEXT_LIMIT = 6000  # characters of a prompt/response shown in the browser; the run keeps the rest


def slug(name: str) -> str:
    """A file-name-safe, collision-free slug: readable part + a short hash of the exact name."""
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "x"
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def safe_json(data: Any) -> Markup:
    """JSON that is safe inside <script type="application/json">."""
    text = json.dumps(data, ensure_ascii=False, default=str, allow_nan=False)
    for ch, esc in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return Markup(text)


def _clean(x: Any) -> Any:
    """NaN/inf -> None, recursively, so the JSON output is standard JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _num(x: Any, fmt: str = ".3f") -> str:
    return format(x, fmt) if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def _text(x: Any) -> str:
    if x is None:
        return "–"
    s = x if isinstance(x, str) else json.dumps(x, ensure_ascii=False, default=str)
    return (
        s
        if len(s) <= TEXT_LIMIT
        else s[:TEXT_LIMIT] + f"\n…[{len(s) - TEXT_LIMIT} more characters in samples.jsonl]"
    )


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=_num,
        text=_text,
        slug=slug,
        pct=lambda x: _num(100 * x, ".1f") + "%" if isinstance(x, (int, float)) else "–",
        money=lambda x: f"${x:,.4f}" if isinstance(x, (int, float)) else "–",
        sortval=lambda x: "" if not isinstance(x, (int, float)) or not math.isfinite(x) else repr(x),
    )
    return env


def entry_record(e: Entry) -> dict[str, Any]:
    return {
        "model": e.model,
        "task": e.task,
        "variant": e.variant,
        "metric": e.metric,
        "value": e.value,
        "ci_low": e.ci_low,
        "ci_high": e.ci_high,
        "n": e.n,
        "normalised": e.normalised,
        "normalised_ci_low": e.norm_low,
        "normalised_ci_high": e.norm_high,
        "band": e.band,
        "comparable": e.comparable,
        "flag": e.flag,
        "invalid": e.invalid,
        "ranked": e.ranked,
        "n_samples": e.n_samples,
        "n_scored": e.n_scored,
        "n_unparseable": e.n_unparseable,
        "parse_failure_rate": e.parse_failure_rate,
        "n_errors": e.n_errors,
        "calls": e.calls,
        "tokens": e.tokens,
        "cost_usd": e.cost_usd,
        "judge": e.judge,
        "started": e.started,
        "run_dir": e.run_dir,
        "robustness": {v: vars(sp) for v, sp in e.robustness.items()},
    }


def board_json(board: Board) -> dict[str, Any]:
    return _clean(
        {
            "leaderboard": as_dict(board.config),
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "harness_version": __version__,
            "overall": [
                {
                    "model": r.model,
                    "overall": r.overall,
                    "ci_low": r.overall_low,
                    "ci_high": r.overall_high,
                    "band": r.band,
                    "missing": r.missing,
                    "parse_failure_rate": r.parse_failure_rate,
                    "cost_usd": r.total("cost_usd"),
                    "calls": r.total("calls"),
                }
                for r in board.models
            ],
            "entries": [entry_record(e) for e in board.entries],
            "flags": board.flags,
            "notes": board.notes,
        }
    )


def write_tables(board: Board, out: Path) -> None:
    import pandas as pd

    data = board_json(board)
    (out / "leaderboard.json").write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    overall = [
        {
            "model": r["model"],
            "task": "overall",
            "variant": board.config.variant,
            "metric": "normalised_mean",
            "value": r["overall"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "normalised": r["overall"],
            "band": r["band"],
            "comparable": not r["missing"],
            "flag": ("no overall score: missing or unranked " + ", ".join(r["missing"]))
            if r["missing"]
            else "",
            "parse_failure_rate": r["parse_failure_rate"],
            "calls": r["calls"],
            "cost_usd": r["cost_usd"],
        }
        for r in data["overall"]
    ]
    frame = pd.DataFrame(overall + data["entries"])
    frame.to_csv(out / "leaderboard.csv", index=False)


def _charts(board: Board, task: str) -> dict[str, Any]:
    ranked = board.ranked(task)
    score = bar_chart(
        [Bar(e.model, e.value, e.ci_low, e.ci_high, muted=not e.ranked) for e in ranked],
        title=f"{task}: {ranked[0].metric if ranked else ''} with 95% CI",
    )
    deltas = [
        e
        for e in board.entries
        if e.task == task
        and e.variant != board.config.variant
        and e.vs_direct
        and e.vs_direct.get("delta") is not None
    ]
    delta_chart = (
        bar_chart(
            [
                Bar(
                    f"{e.model} · {e.variant}",
                    e.vs_direct["delta"],
                    e.vs_direct.get("ci_low"),
                    e.vs_direct.get("ci_high"),
                    muted=not e.ranked,
                )
                for e in deltas
                if e.vs_direct is not None
            ],  # always so in `deltas`: narrows
            fmt="+.3f",
            zero=0.0,
            title=f"{task}: variant minus direct, paired, 95% CI",
        )
        if deltas
        else None
    )
    prefs = []
    for e in ranked:
        pref = e.details.get("preference")
        if isinstance(pref, dict) and pref:
            bars = [
                Bar(str(k), float(v))
                for k, v in sorted(pref.items(), key=lambda kv: -float(kv[1] or 0))
                if isinstance(v, (int, float))
            ]
            prefs.append(
                (e.model, bar_chart(bars, fmt=".2f", zero=1.0, title=f"{e.model}: strategy preference"))
            )
    return {"score_chart": score, "deltas": deltas, "delta_chart": delta_chart, "preference_charts": prefs}


def _figures(board: Board, task: str) -> list[tuple[Entry, dict[str, Markup]]]:
    """Each result of `task` with its reliability diagram and wheel plot, where it has them."""
    found = [
        (e, figures(f"{e.model} · {e.variant}", e.calibration, e.details))
        for e in board.entries
        if e.task == task
    ]
    return [(e, f) for e, f in found if f]


def build_site(board: Board, out: str | Path, max_samples: int = 500) -> dict[str, int]:
    """Write the site into `out`; returns how many files of each kind were written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    for name in ("site.css", "site.js"):
        shutil.copyfile(HERE / "static" / name, out / "assets" / name)
    env = _env()
    common = {
        "board": board,
        "config": board.config,
        "tasks": board.config.tasks,
        "version": __version__,
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    probe_groups, probe_notes = collect_probes(board)
    common["probing"] = bool(probe_groups)  # base.html.j2 links probing.html when there is one
    counts = {"task_pages": 0, "model_pages": 0, "sample_pages": 0, "probing_pages": int(bool(probe_groups))}

    def write(name: str, template: str, **ctx: Any) -> None:
        (out / name).write_text(env.get_template(template).render(**common, **ctx), encoding="utf-8")

    write("index.html", "index.html.j2", data_json=safe_json(board_json(board)))
    for spec in board.config.tasks:
        write(
            f"task-{slug(spec.task)}.html",
            "task.html.j2",
            spec=spec,
            ranked=board.ranked(spec.task),
            **_charts(board, spec.task),
            figures=_figures(board, spec.task),
        )
        counts["task_pages"] += 1
    for row in board.models:
        mine = [e for e in board.entries if e.model == row.model]
        write(f"model-{slug(row.model)}.html", "model.html.j2", row=row, entries=mine)
        counts["model_pages"] += 1
        for e in row.entries.values():
            records = [r for r in iter_samples(e.run_dir) if r.get("task") == e.task]
            write(
                f"samples-{slug(e.model)}-{slug(e.task)}.html",
                "samples.html.j2",
                entry=e,
                records=records[:max_samples],
                n_total=len(records),
            )
            counts["sample_pages"] += 1
    if probe_groups:
        write("probing.html", "probing.html.j2", **probing_page(probe_groups, probe_notes))
    write_tables(board, out)
    return counts
