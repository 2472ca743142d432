"""The leaderboard's probing page: the layer curves of every probed model (`emobench probe` runs).

Probe runs are found beside the leaderboard's runs: `probe.json` in place of `results.json` in the
leaderboard's `runs` patterns, and in every run directory next to one the board read. Curves are
comparable only on the same battery (its fingerprint), pooling and input format, so each such group
gets its own charts and table; within a group, the latest run of each model is shown. The x axis is the
relative depth (layer / last layer), so that models of different depths share it.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..errors import EmobenchError
from ..probe.curves import Guide, Series, line_chart
from ..probe.report import PROBE_FILE, read_report
from .collect import Board


@dataclass
class ProbeGroup:
    """Probe runs that can be compared: one battery, pooling and input format."""

    battery: str
    fingerprint: str
    pool: str
    chat_template: bool
    runs: list[dict[str, Any]] = field(default_factory=list)  # {model, path, finished, body, manifest}

    @property
    def title(self) -> str:
        return (
            f"{self.battery} ({self.fingerprint}), {self.pool} pooling, "
            f"{'chat template' if self.chat_template else 'raw text'}"
        )


def probe_files(board: Board) -> list[Path]:
    """probe.json files of the board's `runs` patterns and beside the run directories it read."""
    patterns = [
        p[: -len("results.json")] + PROBE_FILE if p.endswith("results.json") else str(Path(p) / PROBE_FILE)
        for p in board.config.runs
    ]
    patterns += [str(Path(e.run_dir).parent / "*" / PROBE_FILE) for e in board.entries]
    found = {Path(f).resolve() for pattern in dict.fromkeys(patterns) for f in glob.glob(pattern)}
    return sorted(found)


def collect_probes(board: Board) -> tuple[list[ProbeGroup], list[str]]:
    """Groups of comparable probe runs (latest run per model) and notes on files that were skipped."""
    groups: dict[tuple[str, str, bool], ProbeGroup] = {}
    notes: list[str] = []
    for path in probe_files(board):
        try:
            report = read_report(path)
        except EmobenchError as exc:
            notes.append(f"{exc}; skipped")
            continue
        man = report["manifest"]
        battery, chat = man["battery"], bool(man["input"]["chat_template"])
        for pool, body in report["pools"].items():
            key = (battery["fingerprint"], pool, chat)
            group = groups.setdefault(key, ProbeGroup(battery["name"], battery["fingerprint"], pool, chat))
            run = {
                "model": man["model"]["spec"],
                "path": str(path.parent),
                "body": body,
                "manifest": man,
                "finished": (report.get("run") or {}).get("finished", ""),
            }
            older = [r for r in group.runs if r["model"] == run["model"]]
            if older and older[0]["finished"] >= run["finished"]:
                continue
            group.runs = [r for r in group.runs if r["model"] != run["model"]] + [run]
    for g in groups.values():
        g.runs.sort(key=lambda r: r["model"])
    return sorted(groups.values(), key=lambda g: (g.battery, g.fingerprint, g.pool, g.chat_template)), notes


def _depth_series(run: dict[str, Any], analysis: str, metric: str) -> Series:
    layers = run["body"]["layers"]
    last = max(run["manifest"]["input"]["hidden_layers"] - 1, 1)
    curve = run["body"]["curves"][analysis][metric]
    return Series(
        run["model"],
        [x / last for x in layers],
        [m.get("value") for m in curve],
        [m.get("ci_low") for m in curve],
        [m.get("ci_high") for m in curve],
    )


def group_charts(group: ProbeGroup) -> dict[str, Markup]:
    depth = "relative depth (layer / last layer)"
    return {
        "reception": line_chart(
            [_depth_series(r, "reception", "auroc") for r in group.runs],
            [Guide("chance 0.5", 0.5)],
            title="affect reception: AUROC, 95% CI",
            x_label=depth,
        ),
        "categorization": line_chart(
            [_depth_series(r, "categorization", "accuracy") for r in group.runs],
            [Guide("chance 0.125", 0.125)],
            title="emotion categorization: 8-way accuracy, 95% CI",
            x_label=depth,
        ),
    }


def probing_page(groups: list[ProbeGroup], notes: list[str]) -> dict[str, Any]:
    """The template context of probing.html."""
    return {"groups": [(g, group_charts(g)) for g in groups], "probe_notes": notes}
