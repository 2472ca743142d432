"""Representational geometry per layer: RSA against the Plutchik wheel, and affect directions.

Both read the states standardised per feature over the battery's items, as the probes see them: in
raw states a few outlier dimensions (they appear in the middle layers of SmolLM2) dominate every
cosine and flip the sign of the direction cosine from one layer to the next.

RSA (Kriegeskorte et al. 2008): the items' representational dissimilarity matrix (1 - cosine) is
compared with a model matrix, the distance between the items' emotions on
Plutchik's wheel (0 same petal, 1 adjacent, ... 4 opposite), by Spearman's rho over the pairs of items.
Its interval resamples items (a pair of copies of one item is dropped); the ranks of the full set are
reused in each resample, which keeps the bootstrap to one matrix product.

Directions: the difference-of-means affect direction (affect items minus their neutral controls) from
keyword-rich items and from the keyword-free versions of the same stories; their cosine says whether
naming the emotion moves a story along the same axis as the situation does. Resamples are of stories.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..audit import EMOTIONS
from ..types import Metric
from .stats import metrics, resample_counts

WHEEL = EMOTIONS  # joy, trust, fear, surprise, sadness, disgust, anger, anticipation: each next to the next
GEOMETRY_ROUNDS = 200


def wheel_distance(a: str, b: str) -> int:
    """Steps between two emotions around Plutchik's wheel (anticipation is next to joy): 0..4."""
    step = abs(WHEEL.index(a) - WHEEL.index(b))
    return min(step, len(WHEEL) - step)


def standardised(X: np.ndarray) -> np.ndarray:
    """[L, n, d] z-scored per layer and feature over the n items (a constant feature stays 0)."""
    sd = X.std(axis=1, keepdims=True)
    return (X - X.mean(axis=1, keepdims=True)) / np.where(sd > 1e-12, sd, 1.0)


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, ties averaged (as Spearman's rho needs them)."""
    out = np.empty(x.shape)
    for idx in np.ndindex(x.shape[:-1]):
        _, inverse, counts = np.unique(x[idx], return_inverse=True, return_counts=True)
        out[idx] = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    return out


def dissimilarity(X: np.ndarray) -> np.ndarray:
    """[L, n, d] -> [L, n, n]: 1 - cosine between rows."""
    unit = X / np.maximum(np.linalg.norm(X, axis=-1, keepdims=True), 1e-12)
    return 1.0 - np.matmul(unit, unit.transpose(0, 2, 1))


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson correlation of x [L, m] with y [m] under weights w [R, m] -> [L, R]."""
    total = w.sum(axis=1)
    mx, my = (w @ x.T) / total[:, None], (w @ y) / total  # [R, L], [R]
    sxy = (w @ (x * y).T) / total[:, None] - mx * my[:, None]
    sxx = (w @ (x * x).T) / total[:, None] - mx**2
    syy = (w @ (y * y)) / total - my**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sxy / np.sqrt(sxx * syy[:, None])).T


def rsa_curve(X: np.ndarray, emotions: Sequence[str]) -> list[Metric]:
    """Spearman's rho between each layer's RDM and the wheel-distance matrix of `emotions`; n = items."""
    n = len(emotions)
    upper = np.triu_indices(n, k=1)
    model = np.array([[wheel_distance(a, b) for b in emotions] for a in emotions], dtype=float)[upper]
    ranked_model = ranks(model)
    ranked = ranks(dissimilarity(X)[:, upper[0], upper[1]])
    values = np.array([np.corrcoef(r, ranked_model)[0, 1] for r in ranked])
    counts = resample_counts(n, GEOMETRY_ROUNDS)
    weights = counts[:, upper[0]] * counts[:, upper[1]]  # copies of two distinct items; self-pairs excluded
    return metrics(values, _weighted_pearson(ranked, ranked_model, weights), n)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def direction_cosine_curve(rich_minus_neutral: np.ndarray, free_minus_neutral: np.ndarray) -> list[Metric]:
    """Cosine per layer between the mean of rich - neutral and of free - neutral, both [P, L, d] over
    the same P stories; n = stories."""
    P = rich_minus_neutral.shape[0]
    values = _cosine(rich_minus_neutral.mean(axis=0), free_minus_neutral.mean(axis=0))
    counts = resample_counts(P, GEOMETRY_ROUNDS) / P
    rich = np.einsum("rp,pld->rld", counts, rich_minus_neutral)
    free = np.einsum("rp,pld->rld", counts, free_minus_neutral)
    return metrics(values, _cosine(rich, free).T, P)
