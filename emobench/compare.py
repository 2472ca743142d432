"""The CI regression gate: is the candidate run significantly worse than the baseline on any task?

Per (task, variant) of the baseline, samples are paired by sample id and the task's **primary metric**
(the number results.json reports: accuracy, macro-F1, AUROC, token F1, eqbench_score...) is
recomputed on the paired samples of each run by the task's own `aggregate`, rebuilt from the
manifest. `emobench.paired` gives the delta, its paired bootstrap 95% CI and a p-value (McNemar's exact
test for accuracy over 0/1 scores); p-values are Holm-adjusted across the compared tasks.

A task *regresses* when its delta is below `-max_drop` (in the metric's own units, as printed) and its
Holm-adjusted p is below alpha; the test is of that delta, so the two cannot disagree. Around that:

- a candidate sample that failed (outcome `error`) where the baseline has a result is counted and
  shown; more than `allow_errors` of them in all fail the gate (exit 3), they never just vanish;
- a run that lacks samples its manifest lists (interrupted) is refused (ConfigError, exit 2);
- a candidate result that its own task marks failed (`details.failed`: EQ-Bench with under 83.33% of
  items parseable) where the baseline's is not is a regression, whatever its delta on the parsed items;
- manifests that differ in dataset, template, task args, generation parameters, variant config or,
  for a task scored by judge models, the judges or their rubric templates make a task incomparable
  (exit 2) unless forced;
- runs whose `environment` (backend build, CPU features...) differs get a warning, not a failure.

Exit code: 1 when any task regressed, else 3 when too many candidate samples failed, else 2 when any
task cannot be compared, else 0. The verdict names every one of these, so a regression is never hidden
behind an incomparable task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_REGRESSION, EXIT_SAMPLES_FAILED, ConfigError
from .frames import iter_samples, model_label, read_results, resolve_paths
from .judge import judge_signature
from .metrics import point_estimates_only
from .paired import ROUNDS, Paired, PairedResult, Statistic, holm, paired_compare
from .registry import all_tasks, make_task
from .results import compact_record
from .schema import ScoredRecord

Key = tuple[str, str]  # (task, variant)

METHOD = (
    f"delta = the task's primary metric recomputed by its own aggregate on the samples both runs "
    f"scored (candidate - baseline); 95% CI by a paired bootstrap over sample ids ({ROUNDS} resamples, "
    "fixed seed; matched pairs and the choice orders of one item resampled together); p from McNemar's "
    "exact test for accuracy over 0/1 scores of independent samples, else the two-sided "
    "bootstrap standard-error test; Holm-adjusted across tasks; regression = delta < -max_drop and "
    "p_holm < alpha; max_drop is in the units of each task's primary metric, as printed"
)
UNITS = "max drop and delta are in the units of each task's primary metric, as printed"


@dataclass
class Side:
    """One run: its results file and, per (task, variant), the latest record of each sample id."""

    path: Path
    results: dict[str, Any]
    records: dict[Key, dict[str, ScoredRecord]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return model_label(self.results)

    @property
    def manifest(self) -> dict[str, Any]:
        return self.results["manifest"]

    def entry(self, key: Key) -> dict[str, Any]:
        return next((e for e in self.results["results"] if (e.get("task"), e.get("variant")) == key), {})

    def primary_metric(self, key: Key) -> str | None:
        return self.entry(key).get("primary_metric")

    def failed_note(self, key: Key) -> str | None:
        """Why the task itself marks this result failed (`details.failed`: EQ-Bench with under 83.33% of
        items parseable), or None. Such a score is measured on the few items that parsed, so it is not
        a score at all."""
        details = self.entry(key).get("details") or {}
        if not details.get("failed"):
            return None
        return str(details.get("note") or f"{key[0]} marks this result failed")


@dataclass
class Settings:
    max_drop: float = 0.02
    task_max_drop: dict[str, float] = field(default_factory=dict)  # per-task margins (--max-drop task=x)
    alpha: float = 0.05
    force: bool = False
    allow_errors: int = 0
    task_files: Sequence[str] = ()

    def margin(self, task: str) -> float:
        return self.task_max_drop.get(task, self.max_drop)


def load_side(path: str | Path) -> Side:
    files = resolve_paths([path])
    if len(files) != 1:
        raise ConfigError(f"{path}: expected one run, found {len(files)} results files")
    side = Side(files[0], read_results(files[0]))
    for rec in iter_samples(files[0]):
        by_id = side.records.setdefault((rec["task"], rec["variant"]), {})
        by_id[str(rec["sample_id"])] = compact_record(rec)
    if not side.records:
        raise ConfigError(
            f"{files[0].parent}: no samples.jsonl beside the results file; compare pairs "
            "samples by id and needs the run directory"
        )
    return side


def check_complete(side: Side, keys: Sequence[Key]) -> None:
    """Refuse a run that lacks samples its manifest lists: an interrupted run is not a result."""
    tasks, variants = side.manifest.get("tasks", {}), side.manifest.get("variants", {})
    short = []
    for task, variant in keys:
        expected = tasks.get(task, {}).get("n")
        if variant in variants and isinstance(expected, int):
            have = len(side.records.get((task, variant), {}))
            if have < expected:
                short.append(f"{task}/{variant} has {have} of {expected} samples")
    if short:
        raise ConfigError(
            f"{side.path.parent}: incomplete run ({'; '.join(short)}): rerun the same "
            "`emobench run` command to finish it before comparing"
        )


def comparability_signature(manifest: dict[str, Any], task: str, variant: str) -> dict[str, Any]:
    """What must be equal for two runs of a task to be compared or ranked together."""
    t = manifest.get("tasks", {}).get(task, {})
    model = manifest.get("model", {})
    return {
        "dataset fingerprint": t.get("dataset_fingerprint"),
        "template hash": t.get("template_hash"),
        "task args": t.get("args"),
        "generation params": {
            "task": t.get("generation"),
            "overrides": model.get("generation_overrides"),
            "system_prompt": model.get("system_prompt"),
        },
        "variant config": variant_config(manifest, task, variant),
        "judge": judge_signature(t.get("judge")),  # None for a task no judge scores
    }


def variant_config(manifest: dict[str, Any], task: str, variant: str) -> Any:
    """A variant's config as it bears on `task`: the per-task part a variant may keep under `tasks`
    (`paraphrase`: each task's template hash) narrowed to `task`, so that the other tasks of a run do
    not make it incomparable."""
    config = manifest.get("variants", {}).get(variant)
    if isinstance(config, dict) and isinstance(config.get("tasks"), dict):
        return {**config, "tasks": config["tasks"].get(task)}
    return config


def incomparable_reasons(base: dict[str, Any], cand: dict[str, Any], task: str, variant: str) -> list[str]:
    """Why two manifests cannot be compared on one task (empty when they can)."""
    a, b = comparability_signature(base, task, variant), comparability_signature(cand, task, variant)
    return [f"{k} differs" for k in a if a[k] != b[k]]


def numerics_warning(base: dict[str, Any], cand: dict[str, Any]) -> str | None:
    """A line naming what differs between the two manifests' `environment` (backend build, CPU
    features, library versions): the same requests can give other numbers there. None when equal or
    when a run does not record it."""
    a, b = base.get("environment"), cand.get("environment")
    if not isinstance(a, dict) or not isinstance(b, dict) or a == b:
        return None
    fa, fb = _flat(a), _flat(b)
    diffs = [
        f"{k}: {_short(fa.get(k))} vs {_short(fb.get(k))}"
        for k in sorted(set(fa) | set(fb))
        if fa.get(k) != fb.get(k)
    ]
    return f"results come from different numerics: {'; '.join(diffs)} (baseline vs candidate)"


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- what a task is measured on ----------------------------------------------------------------------


def _mean_score(records: list[ScoredRecord]) -> float:
    return sum(float(r.get("score") or 0.0) for r in records) / len(records) if records else math.nan


def task_statistic(manifest: dict[str, Any], task: str, metric: str, task_files: Sequence[str]) -> Statistic:
    """records -> the value of `metric` in the task's own aggregate, the task rebuilt from the
    manifest's task args (and its task files: `--task-file`, else the paths the run recorded). Raises
    whatever rebuilding or aggregating raises."""
    files = list(task_files) or [f for f in manifest.get("task_files") or [] if Path(f).is_file()]
    t = make_task(task, (manifest.get("tasks", {}).get(task) or {}).get("args") or {}, None, files)

    def statistic(records: list[ScoredRecord]) -> float:
        m = t.aggregate(records)[0].get(metric)
        if m is None:
            raise ValueError(f"its aggregate has no metric {metric!r}")
        return float(m.value)

    return statistic


def measure(
    pairs: Paired, manifest: dict[str, Any], task: str, metric: str, task_files: Sequence[str]
) -> tuple[str, PairedResult | None, str | None]:
    """(what was measured, the paired result, a note). On the task's primary metric; when the task
    cannot be rebuilt here (a plugin not installed, a task file not given) or its aggregate fails on
    the recorded samples, on the mean per-sample score, and the note says so."""
    with point_estimates_only():
        try:
            return metric, paired_compare(pairs, task_statistic(manifest, task, metric, task_files)), None
        except Exception as exc:  # plugin code: whatever it raises, the gate still answers
            unknown = isinstance(exc, KeyError) and exc.args == (task,)
            why = (
                "not a known task: install its plugin or pass --task-file"
                if unknown
                else f"{type(exc).__name__}: {exc}"
            )
            note = (
                f"the {metric} of task {task} cannot be recomputed here ({why}), so it is gated on the "
                "mean per-sample score"
            )
            return "mean score", paired_compare(pairs, _mean_score), note


# ---- the gate ----------------------------------------------------------------------------------------


def compare(
    baseline: str | Path,
    candidate: str | Path,
    max_drop: float = 0.02,
    alpha: float = 0.05,
    tasks: list[str] | None = None,
    force: bool = False,
    allow_errors: int = 0,
    task_max_drop: dict[str, float] | None = None,
    task_files: Sequence[str] = (),
) -> dict[str, Any]:
    """The comparison report (a JSON-ready dict) with its `exit_code`."""
    s = Settings(max_drop, dict(task_max_drop or {}), alpha, force, allow_errors, task_files)
    if min([s.max_drop, *s.task_max_drop.values()]) < 0 or not 0 < s.alpha < 1 or s.allow_errors < 0:
        raise ConfigError("--max-drop must be >= 0, --alpha in (0, 1) and --allow-errors >= 0")
    all_tasks(list(task_files))  # a bad --task-file is bad input (one line, exit 2), not a note per row
    base, cand = load_side(baseline), load_side(candidate)
    keys = _selected(base, tasks, s)
    check_complete(base, keys)
    check_complete(cand, [k for k in keys if k[0] in cand.manifest.get("tasks", {})])
    rows = [_compare_one(base, cand, key, s) for key in keys]
    tested = [r for r in rows if r["p"] is not None]
    too_many_errors = sum(r["n_errors"] for r in rows) > s.allow_errors
    for r, adj in zip(tested, holm([r["p"] for r in tested]), strict=True):
        r["p_holm"] = adj
        r["status"] = _status(r, s.alpha, too_many_errors)
    exit_code, verdict = _verdict(rows, s.allow_errors)
    warning = numerics_warning(base.manifest, cand.manifest)
    return {
        "baseline": {"model": base.label, "path": str(base.path)},
        "candidate": {"model": cand.label, "path": str(cand.path)},
        "max_drop": s.max_drop,
        "task_max_drop": s.task_max_drop,
        "alpha": s.alpha,
        "allow_errors": s.allow_errors,
        "forced": s.force,
        "rounds": ROUNDS,
        "units": UNITS,
        "method": METHOD,
        "warnings": [warning] if warning else [],
        "rows": rows,
        "exit_code": exit_code,
        "verdict": verdict,
    }


def _selected(base: Side, tasks: list[str] | None, s: Settings) -> list[Key]:
    known = {k[0] for k in base.records}
    for label, names in (("--tasks", tasks or []), ("--max-drop", s.task_max_drop)):
        unknown = sorted(set(names) - known)
        if unknown:
            raise ConfigError(f"{base.path}: {label}: no task(s) {', '.join(unknown)} in the baseline")
    keys = [k for k in base.records if tasks is None or k[0] in tasks]
    if not keys:
        raise ConfigError(f"{base.path}: the baseline has no scored samples to compare")
    return keys


def _new_row(task: str, variant: str, margin: float) -> dict[str, Any]:
    return {
        "task": task,
        "variant": variant,
        "name": task if variant == "direct" else f"{task}/{variant}",
        "metric": None,
        "max_drop": margin,
        "status": "missing",
        "n_paired": 0,
        "n_groups": 0,
        "n_errors": 0,
        "n_unpaired": 0,
        "baseline": None,
        "candidate": None,
        "delta": None,
        "ci_low": None,
        "ci_high": None,
        "test": None,
        "worse": None,
        "better": None,
        "p": None,
        "p_holm": None,
        "failed": None,
        "reasons": [],
        "notes": [],
    }


def _pair(b: dict[str, ScoredRecord], c: dict[str, ScoredRecord]) -> tuple[list[str], int, int]:
    """Sample ids scored by both runs; candidate samples that failed where the baseline has a result;
    every other sample that cannot be paired (failed in the baseline, or in one run only)."""
    ok = {i for i, r in b.items() if r["outcome"] != "error"}
    ids = sorted(i for i in ok if i in c and c[i]["outcome"] != "error")
    failed = sum(1 for i in ok if i in c and c[i]["outcome"] == "error")
    return ids, failed, len(set(b) | set(c)) - len(ids) - failed


def _compare_one(base: Side, cand: Side, key: Key, s: Settings) -> dict[str, Any]:
    task, variant = key
    row = _new_row(task, variant, s.margin(task))
    if key not in cand.records:
        row["reasons"] = ["not in the candidate run"]
        return row
    reasons = incomparable_reasons(base.manifest, cand.manifest, task, variant)
    metric, other = base.primary_metric(key), cand.primary_metric(key)
    if metric != other:
        reasons.append(f"primary metric differs ({metric} vs {other})")
    b, c = base.records[key], cand.records[key]
    ids, row["n_errors"], row["n_unpaired"] = _pair(b, c)
    if row["n_unpaired"]:
        row["notes"].append(
            f"{row['n_unpaired']} sample(s) not paired (failed in the baseline or present in one run only)"
        )
    if not ids:
        reasons.append("no sample scored by both runs")
    row["reasons"] = reasons
    if reasons and (not s.force or not ids):
        row["status"] = "incomparable"
        return row
    pairs = Paired([b[i] for i in ids], [c[i] for i in ids])
    row["metric"], result, note = measure(pairs, base.manifest, task, metric or "accuracy", s.task_files)
    row["notes"] += [note] if note else []
    if result is None:
        row.update(
            status="incomparable", reasons=[*reasons, f"{row['metric']} is undefined on the paired samples"]
        )
        return row
    row.update(n_paired=len(ids), status="ok", **vars(result))
    if (failed := cand.failed_note(key)) and not base.failed_note(key):
        row["failed"] = f"the candidate's result is marked failed by its task: {failed}"
    return row


def _status(row: dict[str, Any], alpha: float, too_many_errors: bool) -> str:
    """Regression when the candidate's task marks its result failed (and the baseline's does not), or when
    the delta passes the margin and is significant; improvement likewise; failed candidate samples
    beyond the allowance make any other outcome `errors`."""
    significant = row["p_holm"] < alpha
    if row["failed"] or (row["delta"] < -row["max_drop"] and significant):
        return "regression"
    if too_many_errors and row["n_errors"]:
        return "errors"
    if row["delta"] > row["max_drop"] and significant:
        return "improved"
    return "ok"


def _names(rows: list[dict[str, Any]]) -> str:
    return ", ".join(r["name"] for r in rows)


def _verdict(rows: list[dict[str, Any]], allow_errors: int) -> tuple[int, str]:
    regressed = [r for r in rows if r["status"] == "regression"]
    failing = [r for r in rows if r["n_errors"]]
    n_failed = sum(r["n_errors"] for r in failing)
    too_many = n_failed > allow_errors
    blocked = [r for r in rows if r["status"] in ("incomparable", "missing")]
    parts = []
    if regressed:
        parts.append(f"{len(regressed)} task(s) regressed ({_names(regressed)})")
    if too_many:
        parts.append(
            f"{n_failed} candidate sample(s) failed where the baseline has a result "
            f"({_names(failing)}; --allow-errors {allow_errors})"
        )
    if blocked:
        parts.append(f"{len(blocked)} task(s) cannot be compared ({_names(blocked)})")
    if not parts:
        within = f" ({n_failed} failed candidate sample(s) within --allow-errors {allow_errors})"
        return EXIT_OK, "no regression" + (within if n_failed else "")
    code = EXIT_REGRESSION if regressed else EXIT_SAMPLES_FAILED if too_many else EXIT_BAD_INPUT
    return code, "; ".join(parts)
