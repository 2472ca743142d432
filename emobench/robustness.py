"""Does a score survive a change in how the items are asked? Statistics over *conditions*: the same
items asked in several option orders (`permute`) or instruction wordings (`paraphrase`).

A robustness variant asks every condition of a sample itself and keeps each condition's verdict in the
sample's trace (`trace[<variant>]["conditions"]`: name, parsed answer, score, outcome, strictness and
the call's own trace). `condition_records` turns those back into ordinary scored records, one list per
condition, as if the items had been asked under that condition alone, so the task's own `aggregate`
gives each condition's score. From them:

- per-condition score: the task's primary metric with the task's own 95% CI;
- mean over conditions, and spread = max - min over conditions (`best` and `worst` name the two), each
  with a percentile bootstrap 95% CI over items (matched pairs resampled together, every condition of
  an item kept together); the spread's CI is that of the difference between the two conditions
  observed best and worst (a bootstrap of max - min itself is biased upwards and its interval can miss
  the estimate), so it does not allow for having picked them: the permutation test does. Under "the
  condition does not matter", each item's answers are exchangeable across its conditions, so they are
  shuffled within items; `spread_null.null_mean` is the spread such noise alone gives on average and
  `p_value` the share of shuffles with a spread at least as large (add-one). A spread of k noisy
  estimates is above 0 even with no effect: read it against `null_mean`.
- consistency: the share of items given the same readable answer (the same option *content*, after
  mapping each order back) under every condition, with its Wilson CI;
- strict accuracy per condition, where the task has a strict reading: each condition's replies read as
  `strict_accuracy` reads them (a `permute` record holds mapped answers, which always read as stated,
  so its headline `strict_accuracy` does not tell; this does);
- position bias (`permute`): per option list and letter, the pick rate against the gold rate, over the
  (item, order) answers that name an option; bias = pick - gold, and the total variation distance
  TVD = 1/2 sum |pick - gold| as one number; bootstrap CIs over items (the TVD's with each letter's
  bias direction fixed as observed, for the same reason as the spread's).

When the primary metric is the mean of the per-sample scores (checked on the data, as in
`emobench.paired`), resampling is vectorised (1,000 rounds); otherwise the task's aggregate runs on
each resample (`SLOW_ROUNDS` rounds) without its own intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import metrics as M
from .paired import group_key
from .schema import MetricDict, ScoredRecord
from .task import STRICT_KEY, Task
from .types import Metric

ROUNDS = M.BOOTSTRAP_ROUNDS
SLOW_ROUNDS = 200  # resamples when the task's aggregate must run on each (macro-F1, AUROC, ...)
_CHUNK = 100  # resamples computed at once on the vectorised path (memory: chunk x items x conditions)

Statistic = Callable[[list[ScoredRecord]], float]


def condition_records(records: Sequence[ScoredRecord], key: str) -> dict[str, list[ScoredRecord]]:
    """Per condition, each item's record as it reads under that condition alone (parsed answer, score,
    outcome, strictness and call trace of that condition); item i is at index i of every list. Items
    whose trace lacks a condition that others have (a baseline's stand-in, an older record) are left
    out."""
    rows = [(r, ((r.get("trace") or {}).get(key) or {}).get("conditions") or []) for r in records]
    names = next((tuple(str(c["name"]) for c in conds) for _, conds in rows if conds), ())
    per: dict[str, list[ScoredRecord]] = {name: [] for name in names}
    for record, conds in rows:
        if tuple(str(c["name"]) for c in conds) != names:
            continue
        for name, cond in zip(names, conds, strict=True):
            per[name].append(_as_record(record, cond))
    return per if names and per[names[0]] else {}


def _as_record(record: ScoredRecord, cond: dict[str, Any]) -> ScoredRecord:
    metadata = {k: v for k, v in (record.get("metadata") or {}).items() if k != STRICT_KEY}
    if cond.get("strict") is not None:
        metadata[STRICT_KEY] = cond["strict"]
    trace = cond.get("trace") or {}
    out: ScoredRecord = {
        **record,
        "parsed": cond.get("parsed"),
        "score": cond.get("score"),
        "outcome": cond.get("outcome", "unparseable"),
        "metadata": metadata,
        "trace": trace,
        "mode": trace.get("mode"),
    }
    return out


def primary_statistic(task: Task) -> Statistic:
    """records -> the task's primary metric (point value; NaN when its aggregate cannot give one)."""

    def statistic(records: list[ScoredRecord]) -> float:
        try:
            m = task.aggregate(records)[0].get(task.primary_metric)
        except Exception:  # plugin code on a degenerate resample: that resample is left out
            return math.nan
        return float(m.value) if m is not None else math.nan

    return statistic


def summarize_conditions(task: Task, records: Sequence[ScoredRecord], key: str, label: str) -> dict[str, Any]:
    """The metrics every robustness variant reports (see the module docstring); {} without conditions.
    `label` names the conditions in the output (`per_order`, `per_template`)."""
    per = condition_records(records, key)
    if not per:
        return {}
    metric = task.primary_metric
    scores: dict[str, MetricDict] = {}
    strict: dict[str, MetricDict] = {}  # answers stated, not guessed: the raw replies' own strictness
    for name, recs in per.items():
        metrics = task.aggregate(recs)[0]
        if metric in metrics:
            scores[name] = metrics[metric].as_dict()
        if "strict_accuracy" in metrics:
            strict[name] = metrics["strict_accuracy"].as_dict()
    with M.point_estimates_only():
        spread = spread_statistics(list(per.values()), primary_statistic(task))
    names = list(per)
    for end in ("best", "worst"):
        if end in spread:
            spread[end] = names[spread[end]]
    return {
        "metric": metric,
        "conditions": list(per),
        label: scores,
        **spread,
        "consistency": consistency(list(per.values())).as_dict(),
        **({f"strict_accuracy_{label}": strict} if strict else {}),
    }


def consistency(per: list[list[ScoredRecord]]) -> Metric:
    """Share of items with the same readable answer under every condition (Wilson CI)."""
    flags = []
    for rows in zip(*per, strict=True):
        first = rows[0]["parsed"]
        flags.append(float(first is not None and all(r["parsed"] == first for r in rows)))
    return M.proportion(flags)


# ---- spread and mean over conditions ------------------------------------------------------------------


def spread_statistics(
    per: list[list[ScoredRecord]], statistic: Statistic, seed: int = M.BOOTSTRAP_SEED
) -> dict[str, Any]:
    """Mean over conditions and spread (max - min), each with a bootstrap CI over item groups, and the
    permutation test of the spread (see the module docstring). `per[c][i]`: item i under condition c."""
    n = len(per[0])
    values = np.array([statistic(recs) for recs in per], dtype=float)
    if not n or not np.isfinite(values).all():
        return {}
    scores = np.array([[float(r["score"] or 0.0) for r in recs] for recs in per]).T  # items x conditions
    groups = _group_index(per[0])
    rng = np.random.default_rng(seed)
    mean_shaped = np.allclose(values, scores.mean(axis=0), atol=1e-9) and _mean_on_resample(
        per, statistic, scores, groups, rng
    )
    if mean_shaped:
        boot, null = _fast_draws(scores, groups, ROUNDS, rng)
    else:
        boot, null = _slow_draws(per, statistic, groups, SLOW_ROUNDS, rng)
    best, worst = int(values.argmax()), int(values.argmin())
    observed = float(values[best] - values[worst])
    rounds = len(null)
    finite = boot[np.isfinite(boot).all(axis=1)]
    null = null[np.isfinite(null)]
    return {
        "mean": _metric(float(values.mean()), finite.mean(axis=1), n),
        "spread": _metric(observed, finite[:, best] - finite[:, worst], n, floor=0.0),
        "best": best,
        "worst": worst,
        "spread_null": {
            "null_mean": float(null.mean()) if null.size else math.nan,
            "p_value": float((1 + (null >= observed - 1e-12).sum()) / (1 + null.size)),
            "rounds": rounds,
        },
    }


def _metric(value: float, draws: np.ndarray, n: int, floor: float = -math.inf) -> MetricDict:
    """`value` with the 2.5 and 97.5 percentiles of its bootstrap `draws` (the lower one at least
    `floor`: a spread or a distance is not negative)."""
    if not draws.size:
        return Metric(value, math.nan, math.nan, n).as_dict()
    low, high = float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))
    return Metric(value, max(floor, low), high, n).as_dict()


def _group_index(records: list[ScoredRecord]) -> list[np.ndarray]:
    """Item indices of each resampling group (a matched pair, or an item alone)."""
    found: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        found.setdefault(group_key(r), []).append(i)
    return [np.array(v) for v in found.values()]


def _draw_items(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    picked = rng.integers(0, len(groups), size=len(groups))
    return np.concatenate([groups[g] for g in picked])


def _mean_on_resample(
    per: list[list[ScoredRecord]],
    statistic: Statistic,
    scores: np.ndarray,
    groups: list[np.ndarray],
    rng: np.random.Generator,
) -> bool:
    """A coincidence with the mean on the full data is possible; on a random resample as well it is not."""
    idx = _draw_items(groups, np.random.default_rng(rng.integers(1 << 32)))
    return all(
        math.isclose(statistic([recs[i] for i in idx]), float(scores[idx, c].mean()), abs_tol=1e-9)
        for c, recs in enumerate(per)
    )


def _fast_draws(
    scores: np.ndarray, groups: list[np.ndarray], rounds: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(rounds x conditions) bootstrap means, and the spreads of `rounds` within-item shuffles."""
    sums = np.array([scores[g].sum(axis=0) for g in groups])  # groups x conditions
    sizes = np.array([len(g) for g in groups], dtype=float)
    boot, null = [], []
    for start in range(0, rounds, _CHUNK):
        size = min(_CHUNK, rounds - start)
        draw = rng.integers(0, len(groups), size=(size, len(groups)))
        boot.append(sums[draw].sum(axis=1) / sizes[draw].sum(axis=1)[:, None])
        order = rng.random((size, *scores.shape)).argsort(axis=2)
        shuffled = np.take_along_axis(np.broadcast_to(scores, order.shape), order, axis=2).mean(axis=1)
        null.append(shuffled.max(axis=1) - shuffled.min(axis=1))
    return np.concatenate(boot), np.concatenate(null)


def _slow_draws(
    per: list[list[ScoredRecord]],
    statistic: Statistic,
    groups: list[np.ndarray],
    rounds: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    k, n = len(per), len(per[0])
    boot = np.empty((rounds, k))
    null = np.empty(rounds)
    for r in range(rounds):
        idx = _draw_items(groups, rng)
        boot[r] = [statistic([recs[i] for i in idx]) for recs in per]
        order = rng.random((n, k)).argsort(axis=1)  # item i's condition c answer moves to order[i, c]
        shuffled = [[per[order[i, c]][i] for i in range(n)] for c in range(k)]
        values = np.array([statistic(recs) for recs in shuffled])
        null[r] = values.max() - values.min()
    return boot, null


# ---- position bias ------------------------------------------------------------------------------------


def position_bias(
    picks: Sequence[Sequence[dict[str, int | None]]],
    golds: Sequence[Sequence[dict[str, int | None]]],
    seed: int = M.BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Per option list: pick and gold rate per letter, bias = pick - gold and the total variation
    distance, over the answers that name an option; CIs by a bootstrap over items. `picks[i][j]` and
    `golds[i][j]`: item i, order j, position per option list (0 = A; None: no option named)."""
    names = sorted({name for item in golds for order in item for name in order})
    out: dict[str, Any] = {}
    for name in names:
        width = 1 + max((g.get(name) or 0 for item in golds for g in item), default=0)
        width = max(width, 1 + max((p.get(name) or 0 for item in picks for p in item), default=0))
        pick = np.zeros((len(picks), width))
        gold = np.zeros((len(picks), width))
        for i, (item_picks, item_golds) in enumerate(zip(picks, golds, strict=True)):
            for p, g in zip(item_picks, item_golds, strict=True):
                at, truth = p.get(name), g.get(name)
                if at is not None and truth is not None:
                    pick[i, at] += 1
                    gold[i, truth] += 1
        out[name] = _bias_table(pick, gold, np.random.default_rng(seed))
    return out


def _bias_table(pick: np.ndarray, gold: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    answered = int(pick.sum())
    if not answered:
        return {"answered": 0}
    pick_rate, gold_rate = pick.sum(axis=0) / answered, gold.sum(axis=0) / answered
    boot_pick, boot_bias = [], []
    for start in range(0, ROUNDS, _CHUNK):
        draw = rng.integers(0, len(pick), size=(min(_CHUNK, ROUNDS - start), len(pick)))
        total = pick[draw].sum(axis=(1, 2))[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            p, g = pick[draw].sum(axis=1) / total, gold[draw].sum(axis=1) / total
        boot_pick.append(p)
        boot_bias.append(p - g)
    bp, bb = np.concatenate(boot_pick), np.concatenate(boot_bias)
    ok = np.isfinite(bb).all(axis=1)
    bp, bb = bp[ok], bb[ok]
    n = len(pick)
    letters = {
        chr(65 + j): {
            "pick_rate": _metric(float(pick_rate[j]), bp[:, j], n),
            "gold_rate": float(gold_rate[j]),
            "bias": _metric(float(pick_rate[j] - gold_rate[j]), bb[:, j], n),
        }
        for j in range(pick.shape[1])
    }
    signs = np.sign(pick_rate - gold_rate)  # each letter's bias direction, as observed
    tvd = 0.5 * float(np.abs(pick_rate - gold_rate).sum())
    return {
        "answered": answered,
        "total_variation": _metric(tvd, 0.5 * (bb * signs).sum(axis=1), n, floor=0.0),
        "letters": letters,
    }
