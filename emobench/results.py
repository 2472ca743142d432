"""results.json: per (task, variant) metrics with 95% CIs and n, outcome counts, cost, and each
variant's paired delta against `direct` on the same samples.

Headline scoring rule (stated in every results file): unparseable answers count as incorrect; samples
whose model call failed after all retries (`error`) are excluded from the metrics and reported as
`n_errors`. The run is `complete` when every (task, variant, sample) of the manifest has a record
(`n_missing == 0`); its directory's status is `complete` only when, besides, no sample errored, so
the same command resumes it and retries the errored samples.

A task scored by judge models (emobench/judge.py) adds a `judge` block: each judge's score and cost,
the panel mean and the judges' agreement. Its `n_judge_unparseable` samples (no judge's verdict could be
read: outcome `unparseable`, no score, left out of the metric) are not in `n_unparseable`, which counts
the model's own unreadable replies.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .calibration import summarize as calibration_summary
from .judge import judge_unparseable
from .judge import summary as judge_summary
from .metrics import bootstrap_ci
from .runstore import RunStore
from .schema import (
    SCHEMA_VERSION,
    Manifest,
    OutcomeCounts,
    PairedDelta,
    ResultEntry,
    RunResults,
    RunSummary,
    ScoredRecord,
    ScoringRule,
    Status,
    UsageSummary,
)
from .types import record_key

if TYPE_CHECKING:
    from .client import ModelClient
    from .manifest import PreparedTask, RunConfig
    from .variants import Variant

__all__ = ["SCHEMA_VERSION", "SCORING_RULE", "build_results", "compact_record", "paired_delta", "run_status"]

SCORING_RULE: ScoringRule = {
    "unparseable": "counted as incorrect (score 0)",
    "error": "excluded from metrics, counted in n_errors; rerun the same command to retry them",
}


def paired_delta(base: dict[str, float], other: dict[str, float]) -> PairedDelta:
    """Mean of (other - base) over sample ids present in both, with a paired bootstrap 95% CI."""
    ids = sorted(set(base) & set(other))
    if not ids:
        return {"delta": None, "ci_low": None, "ci_high": None, "n": 0}
    diffs = np.array([other[i] - base[i] for i in ids], dtype=float)
    lo, hi = bootstrap_ci(diffs, np.mean)
    return {"delta": float(diffs.mean()), "ci_low": lo, "ci_high": hi, "n": len(ids)}


def build_results(
    store: RunStore,
    tasks: Sequence[PreparedTask],
    variants: Sequence[Variant],
    manifest: Manifest,
    mhash: str,
    client: ModelClient,
    started: float,
    config: RunConfig,
) -> RunResults:
    grouped: dict[tuple[str, str], list[ScoredRecord]] = defaultdict(list)
    recorded: set[str] = set()
    for rec in store.iter_records():
        grouped[(rec["task"], rec["variant"])].append(compact_record(rec))
        recorded.add(rec["key"])
    expected = [record_key(p.task.name, v.name, s.id) for p in tasks for v in variants for s in p.samples]
    n_missing = sum(key not in recorded for key in expected)
    entries: list[ResultEntry] = []
    for prepared in tasks:
        task = prepared.task
        per_variant_scores: dict[str, dict[str, float]] = {}
        per_variant_calls: dict[str, float] = {}
        for variant in variants:
            recs = grouped.get((task.name, variant.name), [])
            scored = [r for r in recs if r["outcome"] != "error"]
            metrics, details = task.aggregate(scored) if scored else ({}, {})
            judged = judge_summary(recs, _self_preference(manifest, task.name))
            n_judge_unparseable = judged["n_judge_unparseable"] if judged else 0
            n_unparseable = sum(r["outcome"] == "unparseable" for r in recs) - n_judge_unparseable
            n_errors = sum(r["outcome"] == "error" for r in recs)
            fallback = sum(1 for r in recs if r["mode"] == "generate_fallback")
            usage = _usage(recs)
            entry: ResultEntry = {
                "task": task.name,
                "variant": variant.name,
                "family": task.family,
                "primary_metric": task.primary_metric,
                "metrics": {k: m.as_dict() for k, m in metrics.items()},
                "n_samples": len(recs),
                "n_scored": len(scored),
                "n_unparseable": n_unparseable,
                "n_errors": n_errors,
                "parse_failure_rate": n_unparseable / len(scored) if scored else None,
                "error_rate": n_errors / len(recs) if recs else None,
                "outcomes": _outcome_counts(recs),
                "usage": usage,
                "details": details,
            }
            if judged is not None:  # each judge's score, agreement and cost; judge parse failures
                entry["judge"] = judged
            summary = variant.summarize(task, scored) if scored else {}
            if summary:  # per-order / per-template scores of the robustness variants
                entry["variant_metrics"] = summary
            calibration = calibration_summary(scored)
            if calibration:  # choice tasks: each confidence source's ECE, Brier, NLL, AURC (calibration.py)
                entry["calibration"] = calibration
            if fallback:
                entry["note"] = (
                    f"multiple_choice task answered by generation on {fallback} samples: the "
                    "backend has no log-likelihoods"
                )
            entries.append(entry)
            per_variant_scores[variant.name] = {  # a sample no judge could score has no score to pair
                r["sample_id"]: float(r["score"] or 0.0) for r in scored if not judge_unparseable(r)
            }
            per_variant_calls[variant.name] = usage["calls_per_sample"] or 0.0
        if "direct" in per_variant_scores and len(variants) > 1:
            for entry in entries:
                if entry["task"] == task.name and entry["variant"] != "direct":
                    delta = paired_delta(per_variant_scores["direct"], per_variant_scores[entry["variant"]])
                    base_calls = per_variant_calls["direct"] or None
                    entry["vs_direct"] = {
                        **delta,
                        "cost_multiple": (per_variant_calls[entry["variant"]] / base_calls)
                        if base_calls
                        else None,
                    }
    stats = client.stats
    return {
        "schema_version": SCHEMA_VERSION,
        "manifest": manifest,
        "manifest_hash": mhash,
        "scoring": SCORING_RULE,
        "run": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "wall_s": round(time.time() - started, 3),
            "run_dir": str(store.dir),
            "complete": n_missing == 0,
            "n_expected": len(expected),
            "n_missing": n_missing,
            "concurrency": config.concurrency,
            "retries": stats.retries,
            "failed_calls": stats.failed_calls,
            "n_errors": sum(e["n_errors"] for e in entries),
        },
        "results": entries,
    }


def _self_preference(manifest: Manifest, task: str) -> list[str]:
    """The judges of `task` that are the model under test."""
    judge = manifest["tasks"][task].get("judge") if task in manifest["tasks"] else None
    return list(judge["self_preference"]) if judge else []


def run_status(run: RunSummary) -> Status:
    """manifest.json's status once a run has ended: anything but `complete` is resumed by the same command."""
    if run["n_missing"]:
        return "incomplete"
    return "errors" if run["n_errors"] else "complete"


def compact_record(rec: dict[str, Any]) -> ScoredRecord:
    """Only what aggregation needs, so that a 50k-sample run does not hold every prompt in memory."""
    meta = rec.get("metadata") or {}
    trace = meta.get("trace") or {}
    small_meta = {k: v for k, v in meta.items() if k not in ("trace", "responses")}
    return {
        "sample_id": rec["sample_id"],
        "outcome": rec["outcome"],
        "score": rec["score"],
        "parsed": rec["parsed"],
        "target": rec["target"],
        "metadata": small_meta,
        "trace": trace,
        "mode": trace.get("mode"),
        "calls": rec.get("calls", 0),
        "cached_calls": rec.get("cached_calls", 0),
        "prompt_tokens": rec.get("prompt_tokens", 0),
        "completion_tokens": rec.get("completion_tokens", 0),
        "latency_s": rec.get("latency_s", 0.0),
        "cost_usd": rec.get("cost_usd"),
    }


def _outcome_counts(recs: list[ScoredRecord]) -> OutcomeCounts:
    def count(outcome: str) -> int:
        return sum(r["outcome"] == outcome for r in recs)

    return {
        "correct": count("correct"),
        "incorrect": count("incorrect"),
        "unparseable": count("unparseable"),
        "error": count("error"),
    }


def _usage(recs: list[ScoredRecord]) -> UsageSummary:
    n = len(recs) or 1
    costs = [r["cost_usd"] for r in recs if r["cost_usd"] is not None]
    calls = sum(r["calls"] + r["cached_calls"] for r in recs)
    return {
        "calls": sum(r["calls"] for r in recs),
        "cached_calls": sum(r["cached_calls"] for r in recs),
        "calls_per_sample": calls / n if recs else None,
        "prompt_tokens": sum(r["prompt_tokens"] for r in recs),
        "completion_tokens": sum(r["completion_tokens"] for r in recs),
        "seconds": round(sum(r["latency_s"] for r in recs), 3),
        "cost_usd": round(sum(costs), 6) if costs else None,
    }
