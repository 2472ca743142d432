"""Cross-validated linear probes: folds grouped by pair, regularisation chosen by nested CV on the
training folds only, out-of-fold scores for every layer at once.

Folds. Every item of a story (the affect item, its neutral control, its keyword-rich version) takes its
pair's fold, so a story is never on both sides of a split. Pairs are shuffled (seeded) within each
emotion and dealt round-robin, so every fold holds every emotion. All probes, the bag-of-words floor
included, use the same folds.

Per outer fold and layer, the training rows are standardised with their own mean and SD and written
in the basis of their own span. An L2-penalised linear model's weights lie in that span, so this is
exact, and every problem becomes as small as its training set (n columns, not 576 or 4096). Every fit
is class-balanced (see `balanced`). The inner
folds (pairs of the training fold) choose C from the grid by validation log-loss (smooth where
accuracy ties at small n; a tie goes to the stronger penalty); the probe is then refit on the whole
training fold at that C and scores the held-out rows. Extra labellings (the control task, the
permutations) are fitted at the same C on the same folds, so they measure the same probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import logreg


@dataclass(frozen=True)
class Settings:
    folds: int = 5
    inner_folds: int = 3
    Cs: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)
    seed: int = 1234


@dataclass(frozen=True)
class Task:
    """Rows that train the probe, rows scored out of fold, their labels (0..n_classes-1; unused rows
    any value) and optional extra labellings [E, n] fitted at the same C."""

    train: np.ndarray
    test: np.ndarray
    labels: np.ndarray
    n_classes: int
    extra: np.ndarray | None = None


@dataclass(frozen=True)
class Result:
    scores: np.ndarray  # [L, n, K] out-of-fold decision values, nan outside `test`
    extra_scores: np.ndarray  # [E, L, n, K] the same for each extra labelling
    C: np.ndarray  # [L, folds] the C chosen in each outer fold


def folds_by_pair(pair_ids: Sequence[str], strata: Sequence[str], k: int, seed: int) -> np.ndarray:
    """Fold index (0..k-1) of each item; all items of a pair share it. A pair's stratum is the first
    non-empty stratum among its items (its emotion); the dealing continues across strata, so fold
    sizes differ by at most one pair."""
    stratum: dict[str, str] = {}
    for pid, s in zip(pair_ids, strata, strict=True):
        if not stratum.get(pid):
            stratum[pid] = s or ""
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    dealt = 0
    for s in sorted(set(stratum.values())):
        members = [p for p in stratum if stratum[p] == s]
        for p in rng.permutation(len(members)):
            fold_of[members[p]] = dealt % k
            dealt += 1
    return np.array([fold_of[p] for p in pair_ids], dtype=int)


def _standardise_and_reduce(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[L, n, d] and [L, m, d] -> [L, n, n] and [L, m, n]: standardised by the training rows, then in the
    eigenbasis of the training rows' Gram matrix (the training span). Zero-variance columns are left
    unscaled and directions of (numerically) zero variance are dropped to zero columns."""
    mean = X_train.mean(axis=1, keepdims=True)
    sd = X_train.std(axis=1, keepdims=True)
    sd[sd < 1e-12] = 1.0
    A, B = (X_train - mean) / sd, (X_test - mean) / sd
    eigval, eigvec = np.linalg.eigh(np.matmul(A, A.transpose(0, 2, 1)))
    root = np.sqrt(np.clip(eigval, 0.0, None))
    keep = root > 1e-9 * root.max(axis=-1, keepdims=True)
    inv = np.where(keep, 1.0 / np.where(keep, root, 1.0), 0.0)
    Z_train = eigvec * np.where(keep, root, 0.0)[:, None, :]
    Z_test = np.matmul(np.matmul(B, A.transpose(0, 2, 1)), eigvec) * inv[:, None, :]
    return Z_train, Z_test


@dataclass
class _Folds:
    """The outer folds of one task, padded to common sizes: groups are (fold, layer), G = F x L."""

    Z_train: np.ndarray  # [G, n, r]
    Z_test: np.ndarray  # [G, m, r]
    train_rows: list[np.ndarray]
    test_rows: list[np.ndarray]
    valid: np.ndarray  # [G, n] real (not padding) training rows
    inner: np.ndarray  # [G, n] inner fold of each training row, -1 for padding
    layers: int

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """Item values [n_items] (or [E, n_items]) laid out as the padded training rows [G, (E,) n]
        (padding rows get 0, a valid label that their zero weight never counts)."""
        n = self.valid.shape[1]
        out = np.zeros(values.shape[:-1] + (len(self.train_rows), n), dtype=values.dtype)
        for f, rows in enumerate(self.train_rows):
            out[..., f, : len(rows)] = values[..., rows]
        out = np.repeat(out, self.layers, axis=-2)  # fold-major: group g = f * L + l
        return np.moveaxis(out, -2, 0) if out.ndim > 2 else out


def _outer_folds(
    X: np.ndarray, task: Task, fold: np.ndarray, pair_ids: np.ndarray, strata: np.ndarray, settings: Settings
) -> _Folds:
    L = X.shape[0]
    train_rows = [np.flatnonzero(task.train & (fold != f)) for f in range(settings.folds)]
    test_rows = [np.flatnonzero(task.test & (fold == f)) for f in range(settings.folds)]
    n = max(len(r) for r in train_rows)
    m = max(1, max(len(r) for r in test_rows))
    G = settings.folds * L
    Z_train, Z_test = np.zeros((G, n, n)), np.zeros((G, m, n))
    valid, inner = np.zeros((G, n), dtype=bool), np.full((G, n), -1)
    for f, (tr, te) in enumerate(zip(train_rows, test_rows, strict=True)):
        zt, zs = _standardise_and_reduce(X[:, tr], X[:, te])
        g = slice(f * L, (f + 1) * L)
        Z_train[g, : len(tr), : len(tr)], Z_test[g, : len(te), : len(tr)] = zt, zs
        valid[g, : len(tr)] = True
        inner[g, : len(tr)] = folds_by_pair(
            list(pair_ids[tr]), list(strata[tr]), settings.inner_folds, settings.seed + 1 + f
        )
    return _Folds(Z_train, Z_test, train_rows, test_rows, valid, inner, L)


def balanced(y: np.ndarray, on: np.ndarray, n_classes: int) -> np.ndarray:
    """Row weights [..., n] that give every class present among the rows `on` the same total weight,
    averaging 1 (scikit-learn's class_weight="balanced"). Without them a class that is rarer in a
    training fold, because more of its items were held out, is predicted less for exactly those held-out
    items, and out-of-fold scores fall below chance on labels that carry no signal."""
    onehot = (y[..., None] == np.arange(n_classes)) & on[..., None]
    counts = onehot.sum(axis=-2, keepdims=True)  # [..., 1, K]
    present = (counts > 0).sum(axis=-1, keepdims=True)
    share = np.where(counts > 0, on.sum(axis=-1)[..., None, None] / np.maximum(present * counts, 1), 0.0)
    return (onehot * share).sum(axis=-1)


def _choose_C(folds: _Folds, labels: np.ndarray, task: Task, settings: Settings) -> np.ndarray:
    """C per group [G] with the lowest inner-validation log-loss (class-balanced, like the fits)."""
    J = settings.inner_folds
    y = np.repeat(labels[:, None, :], J, axis=1)
    fit_on = (folds.inner[:, None, :] != np.arange(J)[None, :, None]) & folds.valid[:, None, :]
    held_out = folds.inner[:, None, :] == np.arange(J)[None, :, None]
    weights = balanced(y, fit_on, task.n_classes)
    losses = []
    for c in settings.Cs:
        problems = logreg.Problems(folds.Z_train, y, weights, np.full(y.shape[:2], c), task.n_classes)
        fitted = logreg.fit(problems)
        row_loss = logreg.row_losses(fitted.scores(folds.Z_train), y, task.n_classes)
        losses.append((row_loss * balanced(y, held_out, task.n_classes)).sum(axis=(1, 2)))
    return np.asarray(settings.Cs)[np.argmin(np.stack(losses), axis=0)]


def _refit(folds: _Folds, y: np.ndarray, best_C: np.ndarray, task: Task) -> logreg.Fitted:
    """Every labelling y [G, M, n] fitted on whole training folds at its group's chosen C (groups that
    chose the same C are solved together)."""
    M = y.shape[1]
    w = balanced(y, np.repeat(folds.valid[:, None, :], M, axis=1), task.n_classes)
    theta = logreg.zeros(logreg.Problems(folds.Z_train, y, w, np.zeros(y.shape[:2]), task.n_classes)).theta
    for c in np.unique(best_C):
        on = np.flatnonzero(best_C == c)
        problems = logreg.Problems(folds.Z_train[on], y[on], w[on], np.full((len(on), M), c), task.n_classes)
        theta[on] = logreg.fit(problems).theta
    return logreg.Fitted(theta)


def cross_validate(
    X: np.ndarray, task: Task, fold: np.ndarray, pair_ids: np.ndarray, strata: np.ndarray, settings: Settings
) -> Result:
    """Out-of-fold scores of the probe on every layer of X [L, n_items, d] (and of its extra labellings)."""
    L, n_items = X.shape[:2]
    folds = _outer_folds(X, task, fold, pair_ids, strata, settings)
    labels = folds.per_row(task.labels)
    best_C = _choose_C(folds, labels, task, settings)
    extra = task.extra if task.extra is not None else np.zeros((0, n_items), dtype=int)
    y = np.concatenate([labels[:, None, :], folds.per_row(extra)], axis=1)
    test_scores = _refit(folds, y, best_C, task).scores(folds.Z_test)  # [G, M, m, K]
    M, K = y.shape[1], test_scores.shape[-1]
    out = np.full((M, L, n_items, K), np.nan)
    for f, rows in enumerate(folds.test_rows):
        block = test_scores[f * L : (f + 1) * L, :, : len(rows)]  # [L, M, m_f, K]
        out[:, :, rows] = block.transpose(1, 0, 2, 3)
    return Result(out[0], out[1:], best_C.reshape(settings.folds, L).T)
