"""Graded credit on Plutchik's wheel: a near miss (anger for disgust) is not a far one (joy for grief).

Plutchik's eight primary emotions sit on a wheel in the order joy, trust, fear, surprise, sadness,
disgust, anger, anticipation (anticipation next to joy); opposite petals are joy-sadness,
trust-disgust, fear-anger and surprise-anticipation (R. Plutchik, "The Nature of Emotions", American
Scientist 89(4), 2001). The wheel distance between two petals is the number of steps between them
round the wheel, 0 to 4.

Credit halves with each step and is 0 for the opposite petal: 1, 0.5, 0.25, 0.125, 0. Why these
weights: Plutchik grades the blends of two emotions by their distance on the wheel, adjacent petals
forming the primary dyads ("often felt", e.g. joy + trust = love), petals two apart the secondary dyads
("sometimes felt"), three apart the tertiary dyads ("seldom felt"), and opposite petals none at all (they
cannot be felt together). A confusion between two emotions that readily co-occur is a partly right
reading of the situation; halving per step makes each rarer blend worth less, and the opposite worth
nothing. A uniform random guess earns (1 + 2*0.5 + 2*0.25 + 2*0.125 + 0) / 8 = 0.34375 (`CHANCE`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import metrics as M
from .audit import EMOTIONS
from .types import Metric

PETALS: tuple[str, ...] = EMOTIONS  # the audit lexicon lists the primaries in wheel order
CREDIT = (1.0, 0.5, 0.25, 0.125, 0.0)  # by wheel distance 0..4
CHANCE = sum(CREDIT[wheel] for wheel in (0, 1, 1, 2, 2, 3, 3, 4)) / len(PETALS)


def wheel_distance(a: str, b: str) -> int:
    """Steps between two petals round the wheel (0 same, 1 adjacent, 4 opposite)."""
    i, j = PETALS.index(a.lower()), PETALS.index(b.lower())
    return min(abs(i - j), len(PETALS) - abs(i - j))


def credit(gold: str, answer: Any) -> float:
    """The wheel credit of `answer` for `gold`; an answer that is no petal (unparseable) earns 0."""
    if not isinstance(answer, str) or answer.lower() not in PETALS:
        return 0.0
    return CREDIT[wheel_distance(gold, answer)]


def is_plutchik(labels: Iterable[str]) -> bool:
    """Whether a label set is exactly Plutchik's eight primaries (any case, any order)."""
    names = [str(x).strip().lower() for x in labels]
    return len(names) == len(PETALS) and set(names) == set(PETALS)


def wheel_report(gold: Sequence[str], answers: Sequence[Any]) -> tuple[Metric, dict[str, Any]]:
    """`wheel_credit` (mean credit, bootstrap 95% CI) and the details the wheel plot draws: the weights,
    the chance level and the confusion over the petals (gold -> answered -> count)."""
    gold = [g.lower() for g in gold]
    answers = [a.lower() if isinstance(a, str) else None for a in answers]
    value = M.mean([credit(g, a) for g, a in zip(gold, answers, strict=True)])
    details = {
        "weights": {str(d): c for d, c in enumerate(CREDIT)},
        "chance": CHANCE,
        "confusion": M.confusion(gold, answers, list(PETALS)),
    }
    return value, details
