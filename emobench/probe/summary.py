"""The few numbers a probe run is reported by: the best layer and value of affect reception and of
emotion categorization, where reception first reaches its plateau, and their dissociation.

- Plateau: the first layer whose reception AUROC reaches the lower end of the best layer's 95% CI,
  i.e. the first layer not clearly below the best one.
- Dissociation ("whether, not which"): reception and categorization each rescaled so that chance is 0
  and perfect is 1, (AUROC - 0.5) / 0.5 and (accuracy - 1/8) / (7/8), at their own best layers;
  the difference, with a bootstrap over stories (an affect item with its neutral control). Best-layer
  values are the maximum of a noisy curve, so they are biased upwards; the whole curves are in probe.json.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import metrics as M
from ..audit import EMOTIONS
from ..types import Metric
from .probes import Analysis, Design
from .stats import auroc_values

CHANCE = 1 / len(EMOTIONS)


def best(curve: list[Metric]) -> int:
    """Index of the highest value (the earliest of ties)."""
    values = np.array([m.value for m in curve], dtype=float)
    return int(np.nanargmax(values)) if np.isfinite(values).any() else 0


def plateau(curve: list[Metric]) -> int:
    top = curve[best(curve)]
    return next(i for i, m in enumerate(curve) if m.value >= top.ci_low or i == best(curve))


def _dissociation(a: Analysis, d: Design, rec_index: int, cat_index: int) -> Metric:
    stories = d.stories("affect", "neutral")
    affect, neutral = stories[:, 0], stories[:, 1]
    logit = a.reception_logit[rec_index]
    data = (
        logit[affect],
        logit[neutral],
        d.fold[affect].astype(float),
        (a.predicted[cat_index][affect] == d.emotion[affect]).astype(float),
    )

    def statistic(pos: np.ndarray, neg: np.ndarray, fold: np.ndarray, correct: np.ndarray) -> float:
        labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        auroc = auroc_values(np.r_[pos, neg][None], labels, np.r_[fold, fold])[0]
        return 2 * (auroc - 0.5) - (correct.mean() - CHANCE) / (1 - CHANCE)

    lo, hi = M.bootstrap_ci(data, statistic)
    return Metric(statistic(*data), lo, hi, len(stories))


def summarise(a: Analysis, d: Design, layers: list[int]) -> dict[str, Any]:
    reception, categorization = a.curves["reception"]["auroc"], a.curves["categorization"]["accuracy"]
    r, c = best(reception), best(categorization)
    affect = d.rows("affect")
    predicted = [EMOTIONS[p] if p >= 0 else None for p in a.predicted[c][affect]]
    out: dict[str, Any] = {
        "reception": {
            "best_layer": layers[r],
            "auroc": reception[r].as_dict(),
            "plateau_layer": layers[plateau(reception)],
        },
        "categorization": {
            "best_layer": layers[c],
            "accuracy": categorization[c].as_dict(),
            "chance": CHANCE,
            "confusion": M.confusion([EMOTIONS[e] for e in d.emotion[affect]], predicted, EMOTIONS),
        },
        "lexical_floor": {k: m.as_dict() for k, m in a.lexical_floor.items()},
    }
    if len(d.stories("affect", "neutral")) >= 2:
        out["dissociation"] = {
            "reception_normalised": 2 * (reception[r].value - 0.5),
            "categorization_normalised": (categorization[c].value - CHANCE) / (1 - CHANCE),
            "difference": _dissociation(a, d, r, c).as_dict(),
        }
    return out
