"""Many small L2 logistic regressions solved at once.

A probe curve needs thousands of fits: layers x outer folds x (inner folds x C grid + refit) x control
and permutation labellings, 12,685 for the shipped battery on SmolLM2's 31 layers. Each is a tiny
problem (about a hundred rows, in the span of its training rows), so scikit-learn's `LogisticRegression`
spends most of its 3-5 ms per fit in Python overhead: 37-52 s on 2 cores. Stacked on batch axes and
solved by one vectorised L-BFGS, they take 9-12 s.

The model and objective are scikit-learn's own (`LogisticRegression(C=C)`, L2 penalty):
`C * sum_i w_i * loss_i + ||W||^2 / 2` with an unpenalised intercept, one weight vector (sigmoid) for
two classes and the symmetric softmax for more. `tests/test_probe.py` checks the solutions against
scikit-learn's.

Problems come in groups: the M problems of group g share the feature matrix X[g] and each has its own
labels, row weights (0 = not in its training set) and C. Padding rows (weight 0) and all-zero padding
columns (whose weights stay 0 under the penalty) change no solution, so groups of unequal size stack.
Internally a group's parameters are one [d + 1, M, K] block (the last row holds the intercepts), so
that scores and gradients are one matrix product per group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MEMORY = 8  # L-BFGS curvature pairs kept
ARMIJO = 1e-4  # sufficient-decrease constant of the backtracking line search
MAX_HALVINGS = 30
CHUNK = 16_000  # parameters solved together: small blocks stay in cache and converge on their own


@dataclass(frozen=True)
class Problems:
    """`X` [G, n, d] shared by the M problems of each group; `y` [G, M, n] class indices, `w` [G, M, n]
    row weights, `C` [G, M] inverse regularisation strengths; `n_classes` >= 2 (the label space)."""

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    C: np.ndarray
    n_classes: int

    @property
    def outputs(self) -> int:
        """Score columns: one for a binary problem (scikit-learn's parametrisation), else one per class."""
        return 1 if self.n_classes == 2 else self.n_classes

    def take(self, groups: np.ndarray | slice) -> Problems:
        return Problems(self.X[groups], self.y[groups], self.w[groups], self.C[groups], self.n_classes)


@dataclass(frozen=True)
class Fitted:
    theta: np.ndarray  # [G, d + 1, M, K]: weights, then the intercept row
    iterations: int = 0

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Decision values [G, M, n, K] of rows X [G, n, d]: the logit (binary) or the class logits."""
        G, d1, M, K = self.theta.shape
        flat = np.matmul(X, self.theta[:, :-1].reshape(G, d1 - 1, M * K)) + self.theta[:, -1].reshape(
            G, 1, M * K
        )
        return flat.reshape(G, -1, M, K).transpose(0, 2, 1, 3)

    def take(self, groups: np.ndarray | slice) -> Fitted:
        return Fitted(self.theta[groups], self.iterations)


def zeros(p: Problems) -> Fitted:
    return Fitted(np.zeros((p.X.shape[0], p.X.shape[2] + 1, p.w.shape[1], p.outputs)))


def row_losses(scores: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-row log-loss [G, M, n] of decision values [G, M, n, K] against labels [G, M, n]."""
    if n_classes == 2:
        return np.logaddexp(0.0, -np.where(y == 1, 1.0, -1.0) * scores[..., 0])
    top = scores.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(scores - top).sum(axis=-1)) + top[..., 0]
    return lse - np.take_along_axis(scores, y[..., None], axis=-1)[..., 0]


class _Objective:
    """f [G, M] and its gradient [G, d + 1, M, K] for every problem."""

    def __init__(self, p: Problems):
        self.X = p.X
        self.Xt = np.ascontiguousarray(p.X.transpose(0, 2, 1))
        self.cw = (p.C[..., None] * p.w).transpose(0, 2, 1)[..., None]  # [G, n, M, 1]
        y = p.y.transpose(0, 2, 1)  # [G, n, M]
        self.binary = p.n_classes == 2
        self.target = np.where(y == 1, 1.0, -1.0)[..., None] if self.binary else np.eye(p.n_classes)[y]

    def __call__(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        G, d1, M, K = theta.shape
        coef = theta[:, :-1]
        scores = (
            np.matmul(self.X, coef.reshape(G, d1 - 1, M * K)).reshape(G, -1, M, K) + theta[:, -1][:, None]
        )  # [G, n, M, K]
        if self.binary:
            margin = self.target * scores
            loss = np.logaddexp(0.0, -margin)[..., 0]
            dscore = np.exp(margin, out=margin)
            dscore += 1.0
            np.divide(-self.target, dscore, out=dscore)
        else:  # in place where possible: fresh temporaries of this size cost more than the arithmetic
            top = scores.max(axis=-1, keepdims=True)
            dscore = np.subtract(scores, top)
            np.exp(dscore, out=dscore)
            total = dscore.sum(axis=-1, keepdims=True)
            loss = (np.log(total) + top)[..., 0] - np.einsum("gnmk,gnmk->gnm", scores, self.target)
            dscore /= total
            dscore -= self.target
        dscore *= self.cw
        grad = np.empty_like(theta)
        grad[:, :-1] = np.matmul(self.Xt, dscore.reshape(G, -1, M * K)).reshape(G, d1 - 1, M, K) + coef
        grad[:, -1] = dscore.sum(axis=1)
        f = np.einsum("gnm,gnm->gm", self.cw[..., 0], loss) + 0.5 * np.einsum("gdmk,gdmk->gm", coef, coef)
        return f, grad


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-problem inner products [G, M] of two parameter blocks [G, d + 1, M, K]."""
    return np.einsum("gdmk,gdmk->gm", a, b)


def _scaled(a: np.ndarray, s: np.ndarray) -> np.ndarray:
    return a * s[:, None, :, None]


def _preconditioner(p: Problems) -> np.ndarray:
    """A diagonal bound on each problem's Hessian, inverted: L-BFGS's starting inverse Hessian.

    A row's loss curvature is at most 1/4 (sigmoid) or 1/2 (softmax), so coordinate j of the weights
    sees at most C * c * sum_i w_i x_ij^2 + 1. In the span basis the probes use, X^T X is diagonal,
    which makes this bound close enough that L-BFGS converges in a few dozen steps."""
    c = 0.25 if p.n_classes == 2 else 0.5
    cw = p.C[..., None] * p.w  # [G, M, n]
    col = np.einsum("gmn,gnd->gdm", cw, p.X * p.X)  # [G, d, M]
    bound = np.concatenate([c * col + 1.0, c * cw.sum(axis=-1)[:, None, :] + 1e-12], axis=1)
    return (1.0 / bound)[..., None]  # [G, d + 1, M, 1]


def _direction(
    g: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], h0: np.ndarray
) -> np.ndarray:
    """The L-BFGS two-loop recursion, per problem (a pair with rho 0 is skipped)."""
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * _dot(s, q)
        q -= _scaled(y, a)
        alphas.append(a)
    if pairs:  # scale the diagonal to the curvature seen last (Nocedal & Wright, eq. 7.20)
        s, y, rho = pairs[-1]
        yhy = _dot(y, h0 * y)
        gamma = np.where(
            (rho > 0) & (yhy > 0), 1.0 / np.where(rho > 0, rho, 1.0) / np.where(yhy > 0, yhy, 1.0), 1.0
        )
        r = _scaled(h0 * q, gamma)
    else:
        r = h0 * q
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        r += _scaled(s, a - rho * _dot(y, r))
    return -r


def fit(p: Problems, init: Fitted | None = None, tol: float = 1e-4, max_iter: int = 1000) -> Fitted:
    """Minimise every problem's objective, from `init` (a warm start) or zero. A problem stops when its
    largest gradient entry is below `tol` times its loss scale (C x total row weight): scikit-learn's
    `tol` on its averaged objective, which is this one divided by that scale. Groups are solved in
    chunks of at most CHUNK parameters."""
    init = init if init is not None else zeros(p)
    per_group = init.theta[0].size
    step = max(1, CHUNK // per_group)
    parts = [
        _fit(p.take(slice(a, a + step)), init.take(slice(a, a + step)), tol, max_iter)
        for a in range(0, p.X.shape[0], step)
    ]
    if len(parts) == 1:
        return parts[0]
    return Fitted(np.concatenate([f.theta for f in parts]), max(f.iterations for f in parts))


def _fit(p: Problems, init: Fitted, tol: float, max_iter: int) -> Fitted:
    objective = _Objective(p)
    theta = init.theta.copy()
    f, g = objective(theta)
    h0 = _preconditioner(p)
    limit = tol * np.maximum(1.0, p.C * p.w.sum(axis=-1))
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        active = np.abs(g).max(axis=(1, 3)) > limit
        if not active.any():
            break
        step_dir = _direction(g, pairs, h0)
        slope = _dot(g, step_dir)
        uphill = slope >= 0  # a poor curvature pair: fall back to the preconditioned gradient
        if uphill.any():
            step_dir = np.where(uphill[:, None, :, None], -h0 * g, step_dir)
            slope = _dot(g, step_dir)
        step = np.where(active, 1.0, 0.0)
        for _ in range(MAX_HALVINGS):
            trial = theta + _scaled(step_dir, step)
            f_new, g_new = objective(trial)
            ok = f_new <= f + ARMIJO * step * slope
            if ok.all():
                break
            step = np.where(ok, step, step * 0.5)
        s, y = trial - theta, g_new - g
        sy = _dot(s, y)
        rho = np.where(sy > 1e-12, 1.0 / np.where(sy > 1e-12, sy, 1.0), 0.0)
        pairs = [*pairs[-(MEMORY - 1) :], (s, y, rho)]
        theta, f, g = trial, f_new, g_new
    return Fitted(theta, iteration)
