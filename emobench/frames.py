"""Run results as pandas DataFrames, for notebooks, `emobench show` and the leaderboard.

    import emobench
    df = emobench.load_results(["runs/*/", "baseline/results.json"])
    df[df.primary].pivot_table(index="model", columns="task", values="value")

A path may be a run directory, a results file, a glob of either, or a folder of run directories
(`runs/`): every results.json one level below it is read. pandas is imported here only, so that
`import emobench` stays light.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .runstore import RESULTS, SAMPLES, load_run

RESULT_COLUMNS = [
    "model",
    "task",
    "variant",
    "metric",
    "primary",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "n_samples",
    "n_unparseable",
    "n_errors",
    "parse_failure_rate",
    "calls",
    "cost_usd",
    "dataset_fingerprint",
    "template_hash",
    "manifest_hash",
    "started",
    "run_dir",
]
SAMPLE_COLUMNS = [
    "sample_id",
    "task",
    "variant",
    "outcome",
    "score",
    "parsed",
    "target",
    "prompt",
    "response",
    "error",
    "latency_s",
    "calls",
    "cost_usd",
]


def resolve_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Every results file named by `paths` (run dirs, results files, globs, folders of run dirs),
    in a stable order and without duplicates. A path that matches nothing is an error."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    for raw in paths:
        text = str(raw)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        hits: list[Path] = []
        for m in matches:
            p = Path(m)
            if p.is_file():
                hits.append(p)
            elif (p / RESULTS).is_file():
                hits.append(p / RESULTS)
            elif p.is_dir():
                hits.extend(sorted(p.glob(f"*/{RESULTS}")))
        if not hits and not glob.has_magic(text):
            raise ConfigError(
                f"{text}: no results file there (expected a run directory, a results.json "
                "or a folder of run directories)"
            )
        found.extend(hits)
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def read_results(path: str | Path) -> dict[str, Any]:
    """results.json plus `_path` (where it was read from), checked for the fields readers rely on."""
    data = load_run(path)
    p = Path(path)
    p = p / RESULTS if p.is_dir() else p
    if not isinstance(data, dict) or "manifest" not in data or not isinstance(data.get("results"), list):
        raise ConfigError(f"{p}: not an emobench results file (no manifest / results list)")
    return {**data, "_path": str(p)}


def model_label(results: dict[str, Any]) -> str:
    """The name a model is shown under: its spec as given to `emobench run`."""
    model = results.get("manifest", {}).get("model", {})
    return str(model.get("label") or model.get("spec") or model.get("model") or "unknown")


def result_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (task, variant, metric) of one results file."""
    manifest = results["manifest"]
    rows = []
    for e in results["results"]:
        task_m = manifest.get("tasks", {}).get(e["task"], {})
        usage = e.get("usage") or {}
        for name, m in (e.get("metrics") or {}).items():
            rows.append(
                {
                    "model": model_label(results),
                    "task": e["task"],
                    "variant": e["variant"],
                    "metric": name,
                    "primary": name == e.get("primary_metric"),
                    "value": m.get("value"),
                    "ci_low": m.get("ci_low"),
                    "ci_high": m.get("ci_high"),
                    "n": m.get("n"),
                    "n_samples": e.get("n_samples"),
                    "n_unparseable": e.get("n_unparseable"),
                    "n_errors": e.get("n_errors"),
                    "parse_failure_rate": e.get("parse_failure_rate"),
                    "calls": usage.get("calls"),
                    "cost_usd": usage.get("cost_usd"),
                    "dataset_fingerprint": task_m.get("dataset_fingerprint"),
                    "template_hash": task_m.get("template_hash"),
                    "manifest_hash": results.get("manifest_hash"),
                    "started": (results.get("run") or {}).get("started"),
                    "run_dir": str(Path(results["_path"]).parent),
                }
            )
    return rows


def load_results(paths: str | Path | Iterable[str | Path]):
    """Results of one or more runs as a DataFrame: one row per task x variant x metric, with the CI,
    n, parse failures, cost and the manifest fields that decide comparability."""
    import pandas as pd

    rows = [row for p in resolve_paths(paths) for row in result_rows(read_results(p))]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def iter_samples(run_dir: str | Path) -> Iterable[dict[str, Any]]:
    """The per-sample records of a run directory (or of the run a results file belongs to)."""
    p = Path(run_dir)
    path = (p if p.is_dir() else p.parent) / SAMPLES
    if not path.exists():
        return
    with path.open("rb") as fh:
        for raw in fh:
            if raw.endswith(b"\n"):
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue


def load_samples(run_dir: str | Path):
    """samples.jsonl of a run as a DataFrame (one row per task x variant x sample)."""
    import pandas as pd

    return pd.DataFrame(
        [{k: rec.get(k) for k in SAMPLE_COLUMNS} for rec in iter_samples(run_dir)], columns=SAMPLE_COLUMNS
    )
