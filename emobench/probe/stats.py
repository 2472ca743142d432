"""Confidence intervals for a whole layer curve at once.

This is the bootstrap of `emobench.metrics` (percentile intervals, its seed, the very same resampled
indices), applied to every layer in one array operation instead of one Python loop per layer; for a
mean, and for an AUROC whose items share one fold, a layer gets exactly the interval
`metrics.mean` / `metrics.auroc_metric` gives it (checked in the tests). A resample is kept as counts
(how often each item was drawn), which turns each statistic into a weighted sum.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from .. import metrics as M
from ..types import Metric

AUROC_ROUNDS = 500  # as metrics.auroc_metric


def resample_counts(n: int, rounds: int = M.BOOTSTRAP_ROUNDS, seed: int = M.BOOTSTRAP_SEED) -> np.ndarray:
    """[rounds, n]: how often each of n items is drawn in each round of metrics.bootstrap_ci."""
    idx = np.random.default_rng(seed).integers(0, n, size=(rounds, n))
    counts = np.zeros((rounds, n))
    np.add.at(counts, (np.arange(rounds)[:, None], idx), 1.0)
    return counts


def interval(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile 95% interval per row of [L, rounds], ignoring rounds where the statistic is undefined
    (nan where it is undefined in every round: the last-token state of the embedding layer is the same
    for every item that ends with a full stop)."""
    if not stats.size:
        return np.full(stats.shape[:-1], np.nan), np.full(stats.shape[:-1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan rows
        return np.nanpercentile(stats, 2.5, axis=-1), np.nanpercentile(stats, 97.5, axis=-1)


def metrics(values: np.ndarray, stats: np.ndarray, n: int) -> list[Metric]:
    lo, hi = interval(stats)
    return [Metric(float(v), float(a), float(b), n) for v, a, b in zip(values, lo, hi, strict=True)]


def _auroc_rounds(
    scores: np.ndarray, labels: np.ndarray, folds: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """AUROC [L, rounds] of scores [L, n] under each resample [rounds, n], comparing only a positive and
    a negative of the same fold (the Mann-Whitney count, ties one half).

    Out-of-fold scores of different folds come from different probes, whose offsets differ: pooled,
    a labelling that is unevenly spread over the folds (a control task, a shuffle) scores below 0.5
    on features that carry nothing (0.45 on average, measured on random features); within folds 0.49."""
    pos, neg = labels == 1, labels == 0
    same = (folds[pos][:, None] == folds[neg][None, :]).astype(float)
    s_pos, s_neg = scores[:, pos][:, :, None], scores[:, neg][:, None, :]
    wins = ((s_pos > s_neg) + 0.5 * (s_pos == s_neg)) * same  # [L, n_pos, n_neg]
    c_pos, c_neg = counts[:, pos], counts[:, neg]
    total = np.einsum("lrq,rq->lr", np.matmul(c_pos[None], wins), c_neg)
    pairs = np.einsum("rp,pq,rq->r", c_pos, same, c_neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / pairs[None]


def auroc_values(
    scores: np.ndarray, labels: Sequence[int] | np.ndarray, folds: Sequence[int] | np.ndarray
) -> np.ndarray:
    """Within-fold AUROC [L] of scores [L, n] against 0/1 labels."""
    return _auroc_rounds(scores, np.asarray(labels, dtype=int), np.asarray(folds), np.ones((1, len(labels))))[
        :, 0
    ]


def auroc_curve(scores: np.ndarray, labels: Sequence[int], folds: Sequence[int]) -> list[Metric]:
    """Within-fold AUROC per layer with metrics.auroc_metric's bootstrap (with every item in one fold,
    its very value and interval)."""
    y, f = np.asarray(labels, dtype=int), np.asarray(folds)
    counts = resample_counts(len(y), AUROC_ROUNDS)
    return metrics(auroc_values(scores, y, f), _auroc_rounds(scores, y, f, counts), len(y))


def auroc_difference_curve(
    a: np.ndarray, labels_a: Sequence[int], b: np.ndarray, labels_b: Sequence[int], folds: Sequence[int]
) -> list[Metric]:
    """AUROC(a) - AUROC(b) per layer, the same items resampled for both (a paired interval)."""
    ya, yb, f = np.asarray(labels_a, dtype=int), np.asarray(labels_b, dtype=int), np.asarray(folds)
    counts = resample_counts(len(ya), AUROC_ROUNDS)
    values = auroc_values(a, ya, f) - auroc_values(b, yb, f)
    return metrics(values, _auroc_rounds(a, ya, f, counts) - _auroc_rounds(b, yb, f, counts), len(ya))


def mean_curve(values: np.ndarray) -> list[Metric]:
    """Mean of values [L, n] per layer with metrics.mean's bootstrap interval."""
    n = values.shape[1]
    if n == 0:
        return [Metric(float("nan"), float("nan"), float("nan"), 0) for _ in values]
    return metrics(values.mean(axis=1), values @ resample_counts(n).T / n, n)


def proportion_curve(flags: np.ndarray) -> list[Metric]:
    """Share of 1s in flags [L, n] per layer with the Wilson interval (metrics.proportion)."""
    return [M.proportion(list(row)) for row in flags]


def null_summary(observed: np.ndarray, null: np.ndarray) -> list[dict[str, float | int]]:
    """Per layer, from observed [L] and the permutation values [K, L]: the null's mean and 95th
    percentile, and the one-sided permutation p-value (1 + #{null >= observed}) / (K + 1)."""
    k = null.shape[0]
    if k == 0:
        return [{} for _ in observed]
    return [
        {
            "mean": float(np.nanmean(col)),
            "q95": float(np.nanpercentile(col, 95)),
            "p": float((1 + np.sum(col >= obs)) / (k + 1)),
            "k": int(k),
        }
        for obs, col in zip(observed, null.T, strict=True)
    ]
