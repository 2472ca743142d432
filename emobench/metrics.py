"""Metrics with 95% confidence intervals.

Proportions use the Wilson score interval (exact enough at small n, never outside [0, 1]); every other
metric uses a percentile bootstrap over samples with a fixed seed, so the same records always give the
same interval. Paired statistics (deltas between two runs) are in `emobench.paired`.
"""

from __future__ import annotations

import contextvars
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .types import Metric

Z95 = 1.959963984540054
BOOTSTRAP_SEED = 20240601
BOOTSTRAP_ROUNDS = 1000
_INTERVALS = contextvars.ContextVar("emobench_intervals", default=True)


def wilson(successes: float, n: int) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def proportion(flags: Sequence[float]) -> Metric:
    """Mean of 0/1 flags with a Wilson interval; if any value is fractional, a bootstrap instead."""
    n = len(flags)
    if n == 0:
        return Metric(float("nan"), float("nan"), float("nan"), 0)
    total = float(sum(flags))
    if all(f in (0, 1) for f in flags):
        lo, hi = wilson(total, n)
    else:
        lo, hi = bootstrap_ci(np.asarray(flags, dtype=float), np.mean)
    return Metric(total / n, lo, hi, n)


def mean(values: Sequence[float]) -> Metric:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return Metric(float("nan"), float("nan"), float("nan"), 0)
    lo, hi = bootstrap_ci(arr, np.mean)
    return Metric(float(arr.mean()), lo, hi, int(arr.size))


@contextmanager
def point_estimates_only() -> Iterator[None]:
    """Within this block `bootstrap_ci` returns NaN at once: for callers that recompute a task's
    aggregate on thousands of resamples (the `compare` gate) and read only its point values, where
    every nested 1,000-round interval would multiply the cost a thousandfold."""
    token = _INTERVALS.set(False)
    try:
        yield
    finally:
        _INTERVALS.reset(token)


def bootstrap_ci(
    data: Any, statistic: Callable[..., float], rounds: int = BOOTSTRAP_ROUNDS, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile bootstrap. `data` is an array (rows are resampled) or a tuple of aligned arrays."""
    if not _INTERVALS.get():
        return (float("nan"), float("nan"))
    arrays = data if isinstance(data, tuple) else (data,)
    n = len(arrays[0])
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(rounds, n))
    stats = np.empty(rounds)
    for r in range(rounds):
        picked = tuple(np.asarray(a)[idx[r]] for a in arrays)
        stats[r] = statistic(*picked)
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return (float("nan"), float("nan"))
    return (float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5)))


def f1_scores(gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[Any]) -> dict[str, Any]:
    """Per-class precision/recall/F1 with support, plus macro and weighted F1 (sklearn's definitions,
    zero_division=0): a class never predicted and never gold is left out of the macro average only if
    it is not in `labels`."""
    per: dict[Any, dict[str, float]] = {}
    support = Counter(gold)
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred, strict=False) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred, strict=False) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred, strict=False) if g == lab and p != lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[lab] = {"precision": prec, "recall": rec, "f1": f1, "support": support.get(lab, 0)}
    total = sum(support.get(lab, 0) for lab in labels)
    macro = float(np.mean([v["f1"] for v in per.values()])) if per else float("nan")
    weighted = sum(v["f1"] * v["support"] for v in per.values()) / total if total else float("nan")
    return {"per_class": per, "macro_f1": macro, "weighted_f1": weighted}


def macro_f1_metric(
    gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[Any], weighted: bool = False
) -> Metric:
    key = "weighted_f1" if weighted else "macro_f1"
    value = f1_scores(gold, pred, labels)[key]
    codes = {lab: i for i, lab in enumerate(labels)}
    g = np.array([codes.get(x, -1) for x in gold])
    p = np.array([codes.get(x, -1) for x in pred])

    def stat(gs: np.ndarray, ps: np.ndarray) -> float:
        return f1_scores(list(gs), list(ps), list(range(len(labels))))[key]

    lo, hi = bootstrap_ci((g, p), stat, rounds=300)
    return Metric(value, lo, hi, len(gold))


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count one half)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    pos, neg = s[y == 1], s[y == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def auroc_metric(scores: Sequence[float], labels: Sequence[int]) -> Metric:
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    lo, hi = bootstrap_ci((s, y), auroc, rounds=500)
    return Metric(auroc(s, y), lo, hi, int(s.size))


def confusion(gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[Any]) -> dict[str, dict[str, int]]:
    """Nested dict gold -> predicted -> count (predictions outside `labels` count as 'unparseable')."""
    table = {str(g): {str(p): 0 for p in [*labels, "unparseable"]} for g in labels}
    for g, p in zip(gold, pred, strict=False):
        row = table.setdefault(str(g), {})
        col = str(p) if p in labels else "unparseable"
        row[col] = row.get(col, 0) + 1
    return table


# ---- answer-overlap and preference metrics (LongEmotion QA, ESConv / Kang et al. 2024) --------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """LongEmotion's `qa_score.py` normalisation: lowercase, each punctuation character -> a space
    (unlike SQuAD, which deletes it), articles removed, whitespace collapsed."""
    text = "".join(" " if ch in _PUNCTUATION else ch for ch in text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, answer: str) -> float:
    """Multiset token-overlap F1 between normalised prediction and answer (0 when nothing overlaps)."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def bradley_terry(wins: Sequence[Sequence[float]], iterations: int = 20) -> list[float]:
    """Bradley-Terry strengths from a win matrix, `wins[i][j]` = times i beat j (diagonal ignored).

    The minorisation-maximisation update of Kang et al. (2024): Gauss-Seidel sweeps (p_i is replaced
    in place, so later classes in a sweep see it), each followed by division by the geometric mean of
    the non-zero strengths; finally scaled so that the strengths average 1. A zero denominator (a
    class that never lost) leaves that strength unchanged instead of dividing by zero.
    """
    w = np.asarray(wins, dtype=float)
    k = w.shape[0]
    p = [1.0] * k
    for _ in range(iterations):
        for i in range(k):
            num = den = 0.0
            for j in range(k):
                if j != i and p[i] + p[j] > 0:
                    num += w[i][j] * p[j] / (p[i] + p[j])
                    den += w[j][i] / (p[i] + p[j])
            if den > 0:
                p[i] = num / den
        positive = [x for x in p if x > 0]
        if positive:
            geo = math.exp(sum(math.log(x) for x in positive) / len(positive))
            p = [x / geo for x in p]
    total = sum(p)
    return [k * x / total for x in p] if total > 0 else p


def preference_bias(preferences: Sequence[float]) -> float:
    """Kang et al.'s preference bias B: the population standard deviation of the preferences."""
    return float(np.std(np.asarray(preferences, dtype=float)))
