"""Collect results for a leaderboard: the latest run of each (model, task, variant), comparability
flags, normalised and overall scores with CIs, and significance bands.

Significance bands: sort by score; the leader and every model whose 95% CI overlaps the leader's share
band 1; the best remaining model opens band 2, and so on. Models in one band are not distinguishable
at this sample size, so the band, not the row order, is the rank.

Incomparable runs: within a task, the ranked runs must agree on dataset fingerprint, template hash,
task arguments and generation parameters. The signature most runs share is the reference; the others
are shown, flagged with the reason, and left out of the ranking and of the overall score.

Robustness: beside each ranked result, the spreads of the same model's `permute` and `paraphrase`
runs of the task (`Spread`), marked when that run is itself not ranked (another k or other templates
than the other runs of that variant, or incomplete).

Results that are not valid on their own terms are shown with the reason and left out the same way: an
incomplete run (fewer samples than its manifest lists), a result its task marks failed
(`details.failed`: EQ-Bench with under 83.33% of items parseable), and a result with more than the
board's `max_error_rate` of its samples failed. A parse-failure rate is over samples (unparseable /
scored samples), not over the metric's n, which counts parseable items for EQ-Bench and items, not
item x order samples, for the EmoBench paper protocol.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from ..compare import comparability_signature, incomparable_reasons
from ..frames import model_label, read_results, resolve_paths
from ..schema import ResultEntry, VsDirect
from ..types import stable_hash
from .config import LeaderboardConfig, TaskSpec


@dataclass
class Spread:
    """A robustness result shown beside a ranked score: the spread (max - min) of the task's metric over
    the option orders of the same model's `permute` run, or over the wordings of its `paraphrase` run,
    with its CI and the permutation p-value (emobench/robustness.py). Spreads are comparable only between
    runs with the same k and the same templates: `flag` says why this one is not."""

    variant: str
    over: str  # what varied, e.g. "4 orders", "4 templates"
    value: float
    ci_low: float
    ci_high: float
    p_value: float | None
    null_mean: float | None
    comparable: bool
    flag: str


@dataclass
class Entry:
    """One (model, task, variant) result."""

    model: str
    task: str
    variant: str
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_samples: int
    n_scored: int
    n_unparseable: int
    n_errors: int
    parse_failure_rate: float | None
    calls: int
    tokens: int
    cost_usd: float | None
    run_dir: str
    started: str
    manifest: dict[str, Any] = field(repr=False)
    details: dict[str, Any] = field(default_factory=dict, repr=False)
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)
    vs_direct: VsDirect | None = None
    variant_metrics: dict[str, Any] = field(default_factory=dict, repr=False)
    calibration: dict[str, Any] = field(default_factory=dict, repr=False)  # per confidence source
    robustness: dict[str, Spread] = field(default_factory=dict)  # by variant: its spread, on the ranked entry
    signature: str = ""
    comparable: bool = True
    flag: str = ""
    invalid: str = ""  # why the result is not valid on its own terms (empty when it is)
    judge: str = ""  # the judge model(s) that scored a judged task, as given to --judge
    normalised: float | None = None
    norm_low: float | None = None
    norm_high: float | None = None
    band: int | None = None

    @property
    def ranked(self) -> bool:
        return self.comparable and not self.invalid

    @property
    def unranked_reason(self) -> str:
        """Why the result is shown but not ranked, in words; empty when it is ranked."""
        return "; ".join(x for x in (self.flag, f"not ranked: {self.invalid}" if self.invalid else "") if x)


@dataclass
class ModelRow:
    model: str
    entries: dict[str, Entry]
    overall: float | None = None
    overall_low: float | None = None
    overall_high: float | None = None
    band: int | None = None
    missing: list[str] = field(default_factory=list)

    def total(self, key: str) -> float | None:
        values = [getattr(e, key) for e in self.entries.values() if getattr(e, key) is not None]
        return sum(values) if values else None

    @property
    def parse_failure_rate(self) -> float | None:
        scored = sum(e.n_scored for e in self.entries.values())
        return sum(e.n_unparseable for e in self.entries.values()) / scored if scored else None


@dataclass
class Board:
    config: LeaderboardConfig
    entries: list[Entry]  # every loaded result, all variants
    models: list[ModelRow]  # ranked variant, sorted by overall score
    flags: list[str]  # results not ranked (incomparable or not valid), in words
    notes: list[str]  # superseded runs, tasks without any result

    def ranked(self, task: str) -> list[Entry]:
        """The ranked variant's entries of one task, best first, ranked ones before the others."""
        rows = [e for e in self.entries if e.task == task and e.variant == self.config.variant]
        return sorted(rows, key=lambda e: (not e.ranked, -(e.value if _ok(e.value) else -math.inf)))


def _ok(x: float | None) -> TypeGuard[float]:
    """A finite number (not None, not NaN or infinite)."""
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def invalid_reason(res: ResultEntry, manifest: dict[str, Any], max_error_rate: float) -> str:
    """Why a result is not valid on its own terms, in words; empty when it is."""
    n_samples, n_errors = int(res.get("n_samples") or 0), int(res.get("n_errors") or 0)
    expected = manifest.get("tasks", {}).get(res["task"], {}).get("n")
    details = res.get("details") or {}
    if isinstance(expected, int) and n_samples < expected:
        return f"incomplete: {n_samples} of {expected} samples in the run"
    if details.get("failed"):
        return str(details.get("note") or f"{res['task']} marks this result failed")
    if n_samples and n_errors / n_samples > max_error_rate:
        return (
            f"{n_errors} of {n_samples} samples failed ({n_errors / n_samples:.1%}, more than the "
            f"board's max_error_rate {max_error_rate:.0%})"
        )
    return ""


def _entry(
    results: dict[str, Any], res: ResultEntry, spec: TaskSpec | None, max_error_rate: float
) -> Entry | None:
    metric = (spec.metric if spec and spec.metric else None) or res.get("primary_metric")
    m = (res.get("metrics") or {}).get(metric)
    if m is None:
        return None
    usage = res.get("usage") or {}
    run_dir = str(Path(results["_path"]).parent)
    n_samples, n_errors = int(res.get("n_samples") or 0), int(res.get("n_errors") or 0)
    return Entry(
        model=model_label(results),
        task=res["task"],
        variant=res["variant"],
        metric=metric,
        value=m.get("value"),
        ci_low=m.get("ci_low"),
        ci_high=m.get("ci_high"),
        n=int(m.get("n") or 0),
        n_samples=n_samples,
        n_scored=int(res.get("n_scored", n_samples - n_errors) or 0),
        n_unparseable=int(res.get("n_unparseable") or 0),
        n_errors=n_errors,
        parse_failure_rate=res.get("parse_failure_rate"),
        calls=int(usage.get("calls") or 0),
        tokens=int((usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)),
        cost_usd=usage.get("cost_usd"),
        run_dir=run_dir,
        started=(results.get("run") or {}).get("started", ""),
        manifest=results["manifest"],
        details=res.get("details") or {},
        metrics=res.get("metrics") or {},
        vs_direct=res.get("vs_direct"),
        variant_metrics=res.get("variant_metrics") or {},
        calibration=dict(res.get("calibration") or {}),
        signature=stable_hash(comparability_signature(results["manifest"], res["task"], res["variant"]))[:12],
        invalid=invalid_reason(res, results["manifest"], max_error_rate),
        judge=", ".join(
            j.get("spec", "")
            for j in ((results["manifest"].get("tasks", {}).get(res["task"]) or {}).get("judge") or {}).get(
                "judges", []
            )
        ),
    )


def significance_bands(items: list[tuple[Any, float | None, float | None, float | None]]) -> dict[Any, int]:
    """key -> band for (key, value, ci_low, ci_high) items (see the module docstring)."""
    rest = sorted(((key, v, lo, hi) for key, v, lo, hi in items if _ok(v)), key=lambda it: -it[1])
    bands: dict[Any, int] = {}
    band = 0
    while rest:
        band += 1
        leader = rest[0]
        lead_lo = leader[2] if _ok(leader[2]) else leader[1]
        same = [it for it in rest if it is leader or (_ok(it[3]) and it[3] >= lead_lo)]
        for it in same:
            bands[it[0]] = band
        rest = [it for it in rest if it not in same]
    return bands


def collect(config: LeaderboardConfig, runs: list[str] | None = None) -> Board:
    specs = {t.task: t for t in config.tasks}
    paths = resolve_paths(runs or config.runs)
    latest: dict[tuple[str, str, str], Entry] = {}
    notes: list[str] = []
    for path in paths:
        results = read_results(path)
        for res in results["results"]:
            if res["task"] not in specs:
                continue
            e = _entry(results, res, specs[res["task"]], config.max_error_rate)
            if e is None:
                notes.append(f"{path}: {res['task']} has no metric {specs[res['task']].metric!r}; skipped")
                continue
            key = (e.model, e.task, e.variant)
            if key in latest:
                old, new = sorted([latest[key], e], key=lambda x: (x.started, x.run_dir))
                notes.append(
                    f"{e.model} / {e.task} / {e.variant}: using {new.run_dir} ({new.started}); "
                    f"older run {old.run_dir} not shown"
                )
                e = new
            latest[key] = e
    entries = list(latest.values())
    flags = _flag_incomparable(entries, config.variant)
    flags += [
        f"{e.model} on {e.task}"
        + (f" ({e.variant})" if e.variant != config.variant else "")
        + f": not ranked: {e.invalid}"
        for e in entries
        if e.invalid
    ]
    for spec in config.tasks:
        ranked = [e for e in entries if e.task == spec.task and e.variant == config.variant]
        if not ranked:
            notes.append(f"task {spec.task}: no results yet")
        for e in ranked:
            e.normalised = spec.normalise(e.value) if _ok(e.value) else None
            e.norm_low = spec.normalise(e.ci_low) if _ok(e.ci_low) else None
            e.norm_high = spec.normalise(e.ci_high) if _ok(e.ci_high) else None
        bands = significance_bands([(id(e), e.value, e.ci_low, e.ci_high) for e in ranked if e.ranked])
        for e in ranked:
            e.band = bands.get(id(e))
    attach_robustness(entries, config.variant)
    models = _model_rows(entries, config)
    return Board(config, entries, models, flags, notes)


def attach_robustness(entries: list[Entry], variant: str) -> None:
    """Give each ranked-variant entry the spreads of the same model's robustness runs on its task."""
    ranked = {(e.model, e.task): e for e in entries if e.variant == variant}
    for e in entries:
        spread = e.variant_metrics.get("spread")
        target = ranked.get((e.model, e.task))
        if target is None or not isinstance(spread, dict) or not _ok(spread.get("value")):
            continue
        conditions = e.variant_metrics.get("conditions") or []
        null = e.variant_metrics.get("spread_null") or {}
        target.robustness[e.variant] = Spread(
            variant=e.variant,
            over=f"{len(conditions)} {'orders' if 'per_order' in e.variant_metrics else 'templates'}",
            value=spread["value"],
            ci_low=spread.get("ci_low", math.nan),
            ci_high=spread.get("ci_high", math.nan),
            p_value=null.get("p_value"),
            null_mean=null.get("null_mean"),
            comparable=e.ranked,
            flag=e.unranked_reason,
        )


def _flag_incomparable(entries: list[Entry], variant: str) -> list[str]:
    flags = []
    by_task: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        by_task.setdefault((e.task, e.variant), []).append(e)
    for (task, var), group in sorted(by_task.items()):
        counts = Counter(e.signature for e in group)
        if len(counts) < 2:
            continue
        # the reference: the signature most runs share (ties: the one of the most recent run)
        ref_sig = max(counts, key=lambda s: (counts[s], max(e.started for e in group if e.signature == s)))
        ref = next(e for e in group if e.signature == ref_sig)
        for e in group:
            if e.signature != ref_sig:
                reasons = incomparable_reasons(ref.manifest, e.manifest, task, var) or ["manifest differs"]
                e.comparable = False
                e.flag = (
                    f"not ranked: {', '.join(reasons)} (vs. the {counts[ref_sig]} run(s) it would be "
                    f"ranked with)"
                )
                flags.append(f"{e.model} on {task}" + (f" ({var})" if var != variant else "") + f": {e.flag}")
    return flags


def _model_rows(entries: list[Entry], config: LeaderboardConfig) -> list[ModelRow]:
    names = sorted({e.model for e in entries if e.variant == config.variant})
    rows = []
    for name in names:
        mine = {e.task: e for e in entries if e.model == name and e.variant == config.variant}
        row = ModelRow(name, mine)
        usable = [mine.get(t.task) for t in config.tasks]
        row.missing = [
            t.task
            for t, e in zip(config.tasks, usable, strict=True)
            if e is None or not e.ranked or e.normalised is None
        ]
        if not row.missing and usable:
            k = len(usable)
            # nothing missing: every task has an entry with a score (the filter only narrows the types)
            scores = [
                (e.normalised, e.norm_low, e.norm_high)
                for e in usable
                if e is not None and e.normalised is not None
            ]
            row.overall = sum(v for v, _, _ in scores) / k
            # each side of the CI combined separately, so one task's CI (even a lopsided Wilson one at
            # 100%) comes back unchanged and the interval never leaves the tasks' own range
            down = math.sqrt(sum((v - lo) ** 2 for v, lo, _ in scores if _ok(lo)))
            up = math.sqrt(sum((hi - v) ** 2 for v, _, hi in scores if _ok(hi)))
            row.overall_low, row.overall_high = row.overall - down / k, row.overall + up / k
        rows.append(row)
    bands = significance_bands([(r.model, r.overall, r.overall_low, r.overall_high) for r in rows])
    for r in rows:
        r.band = bands.get(r.model)
    return sorted(rows, key=lambda r: (r.overall is None, -(r.overall or 0.0), r.model))
