"""Paired statistics of two runs of one task: how much did the task's own headline number move, and
is the move real?

The quantity is the task's primary metric (accuracy, macro-F1, AUROC, token F1, eqbench_score...),
recomputed by a `statistic(records) -> value` on the samples both runs scored, never a stand-in such
as the mean per-sample score: EQ-Bench averages parseable items only, ESConv reports macro-F1, and a
gate that tests one number while printing another can pass a drop or flag a gain.

- Resampling unit: a sample's group (`group_key`: a matched pair, or every choice order of one item;
  else the sample alone), so samples that move together are drawn together. The same groups are drawn
  for both runs (a paired bootstrap).
- `ROUNDS` resamples with a fixed seed; on each, delta* = statistic(candidate) - statistic(baseline).
  95% CI: the 2.5 and 97.5 percentiles of delta*. p-value (two-sided): the bootstrap standard-error
  test, p = 2 Phi(-|delta| / sd(delta*)). Unlike a percentile p it has no floor at 1/ROUNDS, so it
  stays usable after a Holm correction over dozens of task x variant rows. The test is of the delta
  itself, so the two cannot point different ways.
- McNemar's exact test replaces the bootstrap p when the metric is the plain mean of 0/1 scores over
  independent samples (every group one sample): accuracy on single-order items.
- Speed: when the statistic is the mean of the per-sample scores (checked on the full data and on the
  first resample, not assumed), delta* is computed with numpy for all resamples at once; otherwise the
  statistic runs on every resample (2 x ROUNDS calls).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED
from .schema import ScoredRecord
from .task import group_of
from .types import Sample

ROUNDS = BOOTSTRAP_ROUNDS
CHECKED_ROUNDS = 1  # resamples on which a mean-shaped statistic is confirmed before numpy takes over
_CHUNK = 2_000_000  # resampled indices held at once (memory stays flat on 50k-sample tasks)

Statistic = Callable[[list[ScoredRecord]], float]


@dataclass
class Paired:
    """The records both runs scored, aligned: `base[i]` and `cand[i]` are the same sample."""

    base: list[ScoredRecord]
    cand: list[ScoredRecord]


@dataclass
class PairedResult:
    baseline: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    p: float
    test: str  # "mcnemar_exact" or "bootstrap"
    worse: int  # samples whose own score fell (descriptive; the test is on the metric)
    better: int
    n_groups: int


def group_key(record: ScoredRecord) -> str:
    """The resampling group of a record, by the rule that keeps dev/test splits apart."""
    return group_of(
        Sample(id=str(record["sample_id"]), input="", target=None, metadata=record.get("metadata") or {})
    )


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (0 <= k <= n); 1.0 when n == 0.
    Summed in log space so that it stays exact enough for n in the tens of thousands."""
    if n == 0:
        return 1.0
    m = min(k, n - k)
    log_half = n * math.log(0.5)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
        for i in range(m + 1)
    )
    return min(1.0, 2.0 * tail)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


class _Groups:
    """Records sorted by group, so that a resample of groups is a slice list of record indices."""

    def __init__(self, records: list[ScoredRecord]):
        keys = [group_key(r) for r in records]
        index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        codes = np.array([index[k] for k in keys], dtype=np.int64)
        self.order = np.argsort(codes, kind="stable")
        self.sizes = np.bincount(codes, minlength=len(index))
        self.starts = np.concatenate(([0], np.cumsum(self.sizes)[:-1]))
        self.singletons = bool((self.sizes == 1).all())

    def __len__(self) -> int:
        return len(self.sizes)

    def members(self, draw: np.ndarray) -> np.ndarray:
        """Record indices of the drawn groups (a group drawn twice contributes its records twice)."""
        if self.singletons:
            return self.order[draw]
        sizes = self.sizes[draw]
        offsets = np.repeat(self.starts[draw] - np.cumsum(sizes) + sizes, sizes)
        return self.order[np.arange(int(sizes.sum())) + offsets]


def _draws(n_groups: int, rounds: int, seed: int):
    """The resamples, a chunk of rows at a time: row r is the same whatever the chunk size."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK // max(1, n_groups))
    for start in range(0, rounds, per_chunk):
        yield rng.integers(0, n_groups, size=(min(per_chunk, rounds - start), n_groups))


def _scores(records: list[ScoredRecord]) -> np.ndarray:
    return np.array([float(r.get("score") or 0.0) for r in records], dtype=float)


def _is_mean(
    statistic: Statistic, pairs: Paired, groups: _Groups, values: tuple[float, float], seed: int
) -> bool:
    """Is `statistic` the mean of the per-sample scores? Checked on the full data and on the first
    resample(s): a coincidence on the full data alone is possible, on a random resample as well it is
    not."""
    base, cand = _scores(pairs.base), _scores(pairs.cand)
    if not all(math.isclose(v, x.mean(), abs_tol=1e-9) for v, x in zip(values, (base, cand), strict=True)):
        return False
    for draw in next(_draws(len(groups), CHECKED_ROUNDS, seed))[:CHECKED_ROUNDS]:
        idx = groups.members(draw)
        for recs, scores in ((pairs.base, base), (pairs.cand, cand)):
            if not math.isclose(statistic([recs[i] for i in idx]), scores[idx].mean(), abs_tol=1e-9):
                return False
    return True


def _mean_deltas(pairs: Paired, groups: _Groups, rounds: int, seed: int) -> np.ndarray:
    """delta* of the mean score for every resample at once: per-group sums and sizes, drawn."""
    diff = (_scores(pairs.cand) - _scores(pairs.base))[groups.order]
    sums = np.add.reduceat(diff, groups.starts) if len(diff) else diff
    out = [sums[d].sum(axis=1) / groups.sizes[d].sum(axis=1) for d in _draws(len(groups), rounds, seed)]
    return np.concatenate(out)


def _statistic_deltas(
    statistic: Statistic, pairs: Paired, groups: _Groups, rounds: int, seed: int
) -> np.ndarray:
    out = []
    for chunk in _draws(len(groups), rounds, seed):
        for draw in chunk:
            idx = groups.members(draw)
            out.append(statistic([pairs.cand[i] for i in idx]) - statistic([pairs.base[i] for i in idx]))
    return np.asarray(out, dtype=float)


def bootstrap_p(delta: float, deltas: np.ndarray) -> float:
    """Two-sided p-value of delta = 0 from the bootstrap standard error (see the module docstring);
    a delta that every resample reproduces exactly (sd 0) is certain."""
    if delta == 0 or deltas.size < 2:
        return 1.0
    sd = float(deltas.std(ddof=1))
    return 0.0 if sd == 0 else math.erfc(abs(delta) / sd / math.sqrt(2))


def paired_compare(
    pairs: Paired, statistic: Statistic, rounds: int = ROUNDS, seed: int = BOOTSTRAP_SEED
) -> PairedResult | None:
    """Delta of `statistic` (candidate - baseline) with its bootstrap CI and a two-sided p-value;
    None when the statistic is undefined on the paired samples (e.g. AUROC with one class)."""
    if not pairs.base:
        return None
    values = (statistic(pairs.base), statistic(pairs.cand))
    if not all(math.isfinite(v) for v in values):
        return None
    groups = _Groups(pairs.base)
    mean_shaped = _is_mean(statistic, pairs, groups, values, seed)
    deltas = (
        _mean_deltas(pairs, groups, rounds, seed)
        if mean_shaped
        else _statistic_deltas(statistic, pairs, groups, rounds, seed)
    )
    deltas = deltas[np.isfinite(deltas)]
    base, cand = _scores(pairs.base), _scores(pairs.cand)
    worse, better = int((cand < base).sum()), int((cand > base).sum())
    binary = bool(np.isin(base, (0.0, 1.0)).all() and np.isin(cand, (0.0, 1.0)).all())
    delta = values[1] - values[0]
    if mean_shaped and binary and groups.singletons:
        test, p = "mcnemar_exact", binomial_two_sided(better, worse + better)
    else:
        test, p = "bootstrap", bootstrap_p(delta, deltas)
    lo, hi = (
        (float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5)))
        if deltas.size
        else (math.nan, math.nan)
    )
    return PairedResult(
        baseline=values[0],
        candidate=values[1],
        delta=delta,
        ci_low=lo,
        ci_high=hi,
        p=p,
        test=test,
        worse=worse,
        better=better,
        n_groups=len(groups),
    )
