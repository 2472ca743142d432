"""Expected agreement with a gold answer that names several acceptable labels.

Some datasets give an item more than one right emotion: a compound label ("Anger & Disappointment" in
LongEmotion EC) or a list of acceptable ones. Exact match then scores "Anger" as wrong as "Joy". Here
both the gold and the answer are read as sets of labels (a compound split at "&", labels compared in
any case) and an answer earns the Jaccard agreement |answer & gold| / |answer | gold|:

- one label out of a two-label gold earns 1/2: the expected agreement with one gold label drawn at
  random, which is what a single-label answer can hope for against an item annotated with several;
- the whole compound earns 1, as exact match would;
- naming labels that are not gold costs: "Anger & Fear" against "Anger & Disappointment" earns 1/3.

`expected_agreement` is its mean over items (bootstrap 95% CI); with single labels on both sides it is
case-insensitive accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import metrics as M
from .types import Metric

SEPARATOR = "&"


def label_set(label: Any) -> frozenset[str]:
    """The labels a gold or an answer names: a list's items, or a string split at '&', any case."""
    items: Iterable[Any] = label if isinstance(label, (list, tuple, set, frozenset)) else [label]
    out: set[str] = set()
    for item in items:
        if item is None:
            continue
        out.update(part.strip().lower() for part in str(item).split(SEPARATOR) if part.strip())
    return frozenset(out)


def agreement(answer: Any, gold: Any) -> float:
    """Jaccard agreement between the answer's labels and the gold labels (0 for no answer)."""
    a, g = label_set(answer), label_set(gold)
    return len(a & g) / len(a | g) if a and g else 0.0


def is_compound(label: Any) -> bool:
    return len(label_set(label)) > 1


def expected_agreement(answers: Sequence[Any], golds: Sequence[Any]) -> Metric:
    return M.mean([agreement(a, g) for a, g in zip(answers, golds, strict=True)])
