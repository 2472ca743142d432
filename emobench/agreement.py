"""Agreement between judges who scored the same items: Krippendorff's alpha and ICC(2,k), with 95% CIs.

A panel of judges is only worth its cost when its members agree; when they do not, the panel mean
hides a disagreement a user should see. Two standard coefficients are reported for an item x judge
matrix of scores (NaN where a judge's reply could not be read):

- Krippendorff's alpha for interval data (K. Krippendorff, "Computing Krippendorff's Alpha-Reliability",
  2011), computed by the `krippendorff` package (numpy only; it reproduces the worked example of that
  paper: interval alpha 0.849). It uses every pairable value, so an item one judge failed still counts
  when two others scored it.
- ICC(2,k), the two-way random-effects intraclass correlation of the mean of k judges (P. E. Shrout and
  J. L. Fleiss, "Intraclass correlations: uses in assessing rater reliability", Psychological Bulletin
  86(2), 1979, Case 2): how reliable the panel mean is, judges treated as a sample of possible judges.
  Only items every judge scored enter it (the ANOVA needs a complete matrix).

95% CIs: percentile bootstrap over items (emobench.metrics.bootstrap_ci, fixed seed), as for every other
non-proportion metric of the harness.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import bootstrap_ci
from .types import Metric

MIN_ITEMS = 2  # below this neither coefficient is defined


def krippendorff_alpha(scores: Any) -> float:
    """Interval alpha of an items x judges matrix (NaN = missing); NaN when it is undefined (fewer than
    two pairable values, or no variation at all)."""
    import krippendorff

    matrix = np.asarray(scores, dtype=float)
    pairable = matrix[np.sum(~np.isnan(matrix), axis=1) >= 2]
    if len(pairable) < MIN_ITEMS or np.nanvar(pairable) == 0:
        return float("nan")
    try:
        return float(krippendorff.alpha(reliability_data=pairable.T, level_of_measurement="interval"))
    except (ValueError, ZeroDivisionError):
        return float("nan")


def icc2k(scores: Any) -> float:
    """ICC(2,k) of an items x judges matrix, complete rows only (Shrout & Fleiss 1979, Case 2, mean of k
    judges): (BMS - EMS) / (BMS + (JMS - EMS) / n). NaN when undefined."""
    matrix = np.asarray(scores, dtype=float)
    matrix = matrix[~np.isnan(matrix).any(axis=1)]
    n, k = matrix.shape if matrix.ndim == 2 else (0, 0)
    if n < MIN_ITEMS or k < 2:
        return float("nan")
    grand = matrix.mean()
    bms = k * np.sum((matrix.mean(axis=1) - grand) ** 2) / (n - 1)  # between items (targets)
    jms = n * np.sum((matrix.mean(axis=0) - grand) ** 2) / (k - 1)  # between judges
    total = np.sum((matrix - grand) ** 2)
    ems = (total - bms * (n - 1) - jms * (k - 1)) / ((n - 1) * (k - 1))  # residual
    denominator = bms + (jms - ems) / n
    return float((bms - ems) / denominator) if denominator > 0 else float("nan")


def agreement(scores: Any) -> dict[str, Any]:
    """Both coefficients with their bootstrap CIs and n (items), for results.json."""
    matrix = np.asarray(scores, dtype=float)
    complete = int((~np.isnan(matrix).any(axis=1)).sum()) if matrix.size else 0
    pairable = int((np.sum(~np.isnan(matrix), axis=1) >= 2).sum()) if matrix.size else 0
    return {
        "krippendorff_alpha": _with_ci(matrix, krippendorff_alpha, pairable).as_dict(),
        "icc2k": _with_ci(matrix, icc2k, complete).as_dict(),
    }


def _with_ci(matrix: np.ndarray, statistic: Any, n: int) -> Metric:
    value = statistic(matrix) if matrix.size else float("nan")
    if not np.isfinite(value):
        return Metric(float("nan"), float("nan"), float("nan"), n)
    lo, hi = bootstrap_ci(matrix, statistic)
    return Metric(value, lo, hi, n)
