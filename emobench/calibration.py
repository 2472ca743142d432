"""Calibration and selective prediction: does the model know when it is wrong?

Computed for any task from the per-sample confidences that `ask` and the `confidence` variant record in
the trace (emobench/confidence.py), one block per confidence source, into results.json's `calibration`.

For a source with a distribution over the options (`loglikelihood`, `top_logprobs`) the prediction is
the distribution's most probable option (the answer given, at temperature 0), its confidence that
option's probability, and it is correct when it is the gold option. For a stated confidence
(`verbalised`) the prediction is the task's own parsed answer and its outcome decides correctness (an
unparseable answer is wrong).

- ECE (Guo et al. 2017) over equal-mass bins (Nixon et al. 2019): sum over bins of
  (n_b / n) * |accuracy_b - mean confidence_b|. Bins hold about n/B samples each, about 10 per bin and at
  most 15 bins (B is in the output); equal confidences always share a bin, so a constant confidence c
  gives exactly |accuracy - c|.
- ECE of a perfectly calibrated model (`ece_if_calibrated`): the plug-in ECE is positive even for a
  perfectly calibrated model at finite n, so the same confidences are re-scored against outcomes drawn
  as if they were calibrated (consistency resampling, Broecker & Smith 2007); its mean and 95% range,
  and `calibration_p`, the share of those draws with an ECE at least the observed one, say whether the
  observed ECE is distinguishable from perfect calibration at this n.
- Brier score: multiclass, mean over samples of sum_k (p_k - y_k)^2 (0 best, 2 worst), where there is a
  distribution and the gold option is among the options; else top-label, mean of (confidence -
  correct)^2. `brier_form` says which.
- NLL: -mean log p(gold), where there is a distribution (p clipped at machine epsilon, as scikit-learn's
  `log_loss`).
- Selective prediction (Geifman & El-Yaniv 2017): answer only the most confident samples. AURC is the
  area under the risk-coverage curve (mean over coverages i/n of the error rate of the i most confident
  answers); `accuracy_at_80_coverage` is the accuracy of the most confident 80%. Tied confidences are
  taken in every order equally (their errors spread evenly), so the figures do not depend on sort order.
- Top-k accuracy (where there is a distribution): the gold option is among the k most probable; an
  option tied with the gold one counts against it.

Every figure carries a 95% interval: Wilson for proportions, else a percentile bootstrap over samples
(emobench/metrics.py, fixed seed; 500 resamples for the ranking statistics ECE, AURC and coverage, as for
AUROC, else 1,000).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metrics as M
from .confidence import SOURCES, TRACE_KEY
from .schema import Calibration, MetricDict, ReliabilityBin, ScoredRecord
from .types import Metric

COVERAGE = 0.8
MAX_BINS = 15
PER_BIN = 10
TOP_K = (2, 3)
EPS = float(np.finfo(float).eps)
CONSISTENCY_SEED = 20240602
RANKED_ROUNDS = 500  # resamples for ECE, AURC and coverage (as metrics.auroc_metric): each one ranks


def n_bins(n: int) -> int:
    """About PER_BIN samples a bin, at least 1 bin, at most MAX_BINS."""
    return max(1, min(MAX_BINS, n // PER_BIN))


def _tie_groups(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a sorted array: where each run of equal values starts, and each run's length."""
    starts = np.flatnonzero(np.concatenate(([True], c[1:] != c[:-1])))
    return starts, np.diff(np.concatenate((starts, [len(c)])))


def _bin_ids_sorted(c: np.ndarray, bins: int) -> np.ndarray:
    """Equal-mass bins of an ascending array by rank; equal confidences share the bin of the first."""
    starts, size = _tie_groups(c)
    return (np.repeat(starts, size) * bins) // max(1, len(c))


def _ece_sorted(c: np.ndarray, y: np.ndarray, bins: int) -> float:
    if len(c) == 0:
        return float("nan")
    gap = np.bincount(_bin_ids_sorted(c, bins), weights=y - c, minlength=bins)
    return float(np.abs(gap).sum() / len(c))


def _expected_errors_desc(c: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """`expected_errors` for confidences already in descending order."""
    starts, size = _tie_groups(c)
    errors = np.add.reduceat(wrong, starts) if len(c) else np.zeros(0)
    before = np.concatenate(([0.0], np.cumsum(errors)[:-1]))
    within = np.arange(len(c)) - np.repeat(starts, size) + 1
    return np.repeat(before, size) + np.repeat(errors / np.maximum(size, 1), size) * within


def _aurc_sorted(c: np.ndarray, y: np.ndarray) -> float:
    if len(c) == 0:
        return float("nan")
    errors = _expected_errors_desc(c[::-1], 1.0 - y[::-1])
    return float(np.mean(errors / np.arange(1, len(c) + 1)))


def _coverage_sorted(c: np.ndarray, y: np.ndarray, coverage: float = COVERAGE) -> float:
    if len(c) == 0:
        return float("nan")
    keep = max(1, math.ceil(coverage * len(c) - 1e-9))
    return 1.0 - float(_expected_errors_desc(c[::-1], 1.0 - y[::-1])[keep - 1]) / keep


def _ascending(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(conf, kind="stable")
    return conf[order], correct[order]


def ece(conf: np.ndarray, correct: np.ndarray, bins: int) -> float:
    """Expected calibration error over equal-mass bins."""
    return _ece_sorted(*_ascending(conf, correct), bins)


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int) -> list[ReliabilityBin]:
    """Each non-empty bin's mean confidence, accuracy and size: the reliability diagram's points."""
    c, y = _ascending(conf, correct)
    ids = _bin_ids_sorted(c, bins)
    count = np.bincount(ids, minlength=bins)
    conf_sum = np.bincount(ids, weights=c, minlength=bins)
    right = np.bincount(ids, weights=y, minlength=bins)
    return [
        {
            "confidence": float(conf_sum[b] / count[b]),
            "accuracy": float(right[b] / count[b]),
            "n": int(count[b]),
        }
        for b in range(bins)
        if count[b]
    ]


def expected_errors(conf: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """E[errors among the i most confident answers], i = 1..n, tied confidences in random order."""
    order = np.argsort(-conf, kind="stable")
    return _expected_errors_desc(conf[order], 1.0 - correct[order])


def aurc(conf: np.ndarray, correct: np.ndarray) -> float:
    return _aurc_sorted(*_ascending(conf, correct))


def accuracy_at_coverage(conf: np.ndarray, correct: np.ndarray, coverage: float = COVERAGE) -> float:
    return _coverage_sorted(*_ascending(conf, correct), coverage)


def consistency(conf: np.ndarray, observed: float, bins: int, rounds: int = M.BOOTSTRAP_ROUNDS):
    """ECEs of a perfectly calibrated model with these confidences (outcomes drawn as Bernoulli(conf)):
    their mean, 95% range, and the share at least `observed` (a one-sided p-value)."""
    rng = np.random.default_rng(CONSISTENCY_SEED)
    c = np.sort(conf)
    draws = np.array([_ece_sorted(c, (rng.random(len(c)) < c).astype(float), bins) for _ in range(rounds)])
    lo, hi = np.percentile(draws, [2.5, 97.5])
    reference = Metric(float(draws.mean()), float(lo), float(hi), len(conf))
    return reference, float((draws >= observed - 1e-12).mean())


def ranked_bootstrap(
    statistic: Callable[[np.ndarray, np.ndarray], float], conf: np.ndarray, correct: np.ndarray
) -> tuple[float, float]:
    """`metrics.bootstrap_ci` of a statistic of the confidence ranking (ECE, AURC, coverage), the same
    resamples, without sorting each one: the data are sorted once and a resample of their ranks is put
    back in order by counting, so each round costs O(n) instead of a sort."""
    c, y = _ascending(conf, correct)
    n = len(c)

    def on_ranks(ranks: np.ndarray) -> float:
        take = np.repeat(np.arange(n), np.bincount(ranks, minlength=n))
        return statistic(c[take], y[take])

    return M.bootstrap_ci(np.arange(n), on_ranks, rounds=RANKED_ROUNDS)


@dataclass
class Predictions:
    """One source's per-sample figures: confidence of the prediction, whether it was right, and where
    there is a distribution with a known gold option, the multiclass Brier term, p(gold) and the gold
    option's rank."""

    conf: np.ndarray
    correct: np.ndarray
    brier: np.ndarray | None = None
    p_gold: np.ndarray | None = None
    gold_rank: np.ndarray | None = None
    n_options: int = 0


def from_distributions(rows: Sequence[tuple[ScoredRecord, dict[str, Any]]]) -> Predictions:
    """Predictions from option distributions; multiclass terms only when every sample has its gold."""
    probs = [np.asarray(e["probs"], dtype=float) for _, e in rows]
    golds = [e.get("gold") for _, e in rows]
    conf = np.array([p.max() for p in probs])
    if any(not isinstance(g, int) or not 0 <= g < len(p) for g, p in zip(golds, probs, strict=True)):
        correct = np.array([float(r["outcome"] == "correct") for r, _ in rows])
        return Predictions(conf, correct)
    gold = [int(g) for g in golds if isinstance(g, int)]
    correct = np.array([float(int(np.argmax(p)) == g) for p, g in zip(probs, gold, strict=True)])
    brier = np.array([float(((p - np.eye(len(p))[g]) ** 2).sum()) for p, g in zip(probs, gold, strict=True)])
    p_gold = np.array([p[g] for p, g in zip(probs, gold, strict=True)])
    rank = np.array([int((np.delete(p, g) >= p[g]).sum()) for p, g in zip(probs, gold, strict=True)])
    return Predictions(conf, correct, brier, p_gold, rank, min(len(p) for p in probs))


def summarize(records: Sequence[ScoredRecord]) -> dict[str, Calibration]:
    """A calibration block per confidence source found in the records' traces (none: empty)."""
    out: dict[str, Calibration] = {}
    for source in SOURCES:
        rows = [
            (r, e) for r in records if isinstance(e := (r["trace"].get(TRACE_KEY) or {}).get(source), dict)
        ]
        if not rows:
            continue
        if source == "verbalised":
            readable = [(r, e) for r, e in rows if isinstance(e.get("value"), (int, float))]
            conf = np.array([float(e["value"]) for _, e in readable])
            correct = np.array([float(r["outcome"] == "correct") for r, _ in readable])
            block = summary(source, Predictions(conf, correct))
            block["n_unreadable"] = len(rows) - len(readable)
        else:
            block = summary(source, from_distributions(rows))
            masses = [float(e["mass"]) for _, e in rows if isinstance(e.get("mass"), (int, float))]
            if masses:
                block["letter_mass"] = float(np.mean(masses))
        out[source] = block
    return out


def summary(source: str, p: Predictions) -> Calibration:
    """Every figure of one source, each with its 95% interval and n."""
    n = len(p.conf)
    block: Calibration = {"source": source, "n": n}
    if n == 0:
        return block
    bins = n_bins(n)
    value = ece(p.conf, p.correct, bins)
    lo, hi = ranked_bootstrap(lambda c, y: _ece_sorted(c, y, bins), p.conf, p.correct)
    reference, p_value = consistency(p.conf, value, bins)
    block["accuracy"] = M.proportion(p.correct.tolist()).as_dict()
    block["mean_confidence"] = M.mean(p.conf.tolist()).as_dict()
    block["bins"] = bins
    block["reliability"] = reliability(p.conf, p.correct, bins)
    block["ece"] = Metric(value, lo, hi, n).as_dict()
    block["ece_if_calibrated"] = reference.as_dict()
    block["calibration_p"] = p_value
    block["aurc"] = _boot(_aurc_sorted, p, n)
    block["accuracy_at_80_coverage"] = _boot(_coverage_sorted, p, n)
    if p.brier is not None and p.p_gold is not None and p.gold_rank is not None:
        block["brier"] = M.mean(p.brier.tolist()).as_dict()
        block["brier_form"] = "multiclass"
        block["nll"] = M.mean((-np.log(np.clip(p.p_gold, EPS, 1.0))).tolist()).as_dict()
        block["top_k_accuracy"] = {
            str(k): M.proportion((p.gold_rank < k).astype(float).tolist()).as_dict()
            for k in TOP_K
            if k < p.n_options
        }
    else:
        block["brier"] = M.mean(((p.conf - p.correct) ** 2).tolist()).as_dict()
        block["brier_form"] = "top_label"
    return block


def _boot(statistic: Callable[[np.ndarray, np.ndarray], float], p: Predictions, n: int) -> MetricDict:
    """A ranking statistic of ascending (confidence, correct) arrays, with its bootstrap interval."""
    lo, hi = ranked_bootstrap(statistic, p.conf, p.correct)
    return Metric(statistic(*_ascending(p.conf, p.correct)), lo, hi, n).as_dict()
