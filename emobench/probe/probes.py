"""The probes of the track, per layer, each number with a 95% CI and its n.

- Affect reception: affect vs neutral items, AUROC of the out-of-fold probe logit (within folds, see
  `stats`).
- Emotion categorization: an 8-way probe on the keyword-free affect items, top-1 accuracy (chance 1/8).
- Keyword dependence: the categorizer trained on keyword-free items also scores the keyword-rich
  versions of held-out stories, and a probe trained on keyword-rich items scores the keyword-free
  ones; for each, the gap (rich minus free correctness) paired over the stories that have both.
- Controls: a permutation null per layer (labels shuffled; same C and folds; K times) and the control
  task of Hewitt & Liang (2019) at the sentence level: every content word type gets a random label, an
  item takes the label most of its words carry, and the same probe at the same C learns that.
  Selectivity = probe score - control score, paired over items. A bag-of-words probe on the same folds
  is the lexical floor.
- Transfer (AIPsy-Affect's moderate split): its items scored by the probes trained on the battery.
- Geometry: see `geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audit import EMOTIONS, Item, tokens
from ..types import Metric, stable_hash
from . import cv, geometry
from . import stats as S


@dataclass(frozen=True)
class Settings:
    cv: cv.Settings = field(default_factory=cv.Settings)
    permutations: int = 20


@dataclass(frozen=True)
class Design:
    """The battery as arrays, one entry per item: the battery's items, then the transfer items."""

    kind: np.ndarray  # affect | neutral | keyword_rich
    emotion: np.ndarray  # index into EMOTIONS, -1 for a neutral item
    pair: np.ndarray  # pair id (transfer items get their own)
    transfer: np.ndarray  # bool: scored, never trained on
    texts: list[str]
    fold: np.ndarray

    @classmethod
    def of(cls, items: list[Item], transfer: list[Item], folds: int, seed: int) -> Design:
        everything = [*items, *transfer]
        pair = np.array(
            [("transfer:" if i >= len(items) else "") + it.pair_id for i, it in enumerate(everything)]
        )
        return cls(
            np.array([it.kind for it in everything]),
            np.array([EMOTIONS.index(it.emotion) if it.emotion else -1 for it in everything]),
            pair,
            np.arange(len(everything)) >= len(items),
            [it.text for it in everything],
            cv.folds_by_pair(list(pair), [it.emotion or "" for it in everything], folds, seed),
        )

    @property
    def strata(self) -> np.ndarray:
        """What folds are stratified by: the emotion ('' for a neutral item)."""
        return np.array([EMOTIONS[e] if e >= 0 else "" for e in self.emotion])

    def rows(self, *kinds: str, transfer: bool = False) -> np.ndarray:
        return np.flatnonzero(np.isin(self.kind, kinds) & (self.transfer == transfer))

    def stories(self, *kinds: str) -> np.ndarray:
        """[stories, len(kinds)] row indices of the battery stories that have an item of every kind."""
        slots: dict[str, dict[str, np.intp]] = {}
        for i in np.flatnonzero(~self.transfer):
            slots.setdefault(self.pair[i], {})[self.kind[i]] = i
        return np.array(
            [[s[k] for k in kinds] for s in slots.values() if all(k in s for k in kinds)], dtype=int
        ).reshape(-1, len(kinds))


def word_type_labels(texts: list[str], n_classes: int, seed: int) -> np.ndarray:
    """The control task's labels: a random label per content word type (a seeded hash, so it does not
    depend on which other items are in the battery), and per item the label most of its words carry
    (ties to the smaller label)."""
    out = []
    for text in texts:
        votes = np.zeros(n_classes)
        for word in tokens(text):
            votes[int(stable_hash([seed, word])[:8], 16) % n_classes] += 1
        out.append(int(np.argmax(votes)))
    return np.array(out, dtype=int)


def _shuffles(labels: np.ndarray, rows: np.ndarray, k: int, seed: int) -> np.ndarray:
    """[k, n]: `labels` with the values on `rows` shuffled, k times (seeded)."""
    rng = np.random.default_rng(seed)
    out = np.repeat(labels[None], k, axis=0)
    for row in out:
        row[rows] = rng.permutation(labels[rows])
    return out


def lexical_features(texts: list[str]) -> np.ndarray:
    """[1, n, vocabulary] counts of content words, read as the leakage audit reads them. A word seen only
    in held-out items has an all-zero training column, hence weight 0: a vocabulary built from every
    item gives the probe exactly what a training-fold vocabulary would."""
    words = [tokens(t) for t in texts]
    vocabulary = {w: j for j, w in enumerate(sorted({w for ws in words for w in ws}))}
    counts = np.zeros((1, len(texts), len(vocabulary)))
    for i, ws in enumerate(words):
        for w in ws:
            counts[0, i, vocabulary[w]] += 1
    return counts


def _controls(
    d: Design, labels: np.ndarray, rows: np.ndarray, n_classes: int, settings: Settings, salt: int
) -> np.ndarray:
    """A probe's extra labellings [1 + K, n]: the control task, then K shuffles of `labels` over `rows`."""
    control = word_type_labels(d.texts, n_classes, settings.cv.seed)
    return np.concatenate(
        [control[None], _shuffles(labels, rows, settings.permutations, settings.cv.seed + salt)]
    )


def tasks(d: Design, settings: Settings) -> dict[str, cv.Task]:
    """Each probe's training rows, scored rows, labels and extra labellings. The keyword-rich probe is
    only fitted when every training fold can hold some keyword-rich items."""
    scored = np.isin(d.kind, ("affect", "neutral"))
    affect_vs_neutral = (d.kind == "affect").astype(int)
    emotion = np.maximum(d.emotion, 0)
    out = {
        "reception": cv.Task(
            scored & ~d.transfer,
            scored,
            affect_vs_neutral,
            2,
            _controls(d, affect_vs_neutral, d.rows("affect", "neutral"), 2, settings, 101),
        ),
        "categorization": cv.Task(
            (d.kind == "affect") & ~d.transfer,
            d.emotion >= 0,
            emotion,
            len(EMOTIONS),
            _controls(d, emotion, d.rows("affect"), len(EMOTIONS), settings, 202),
        ),
    }
    if len(d.rows("keyword_rich")) >= 2 * settings.cv.folds:
        out["keyword_rich"] = cv.Task(d.kind == "keyword_rich", d.emotion >= 0, emotion, len(EMOTIONS))
    return out


@dataclass
class Analysis:
    """Per-analysis dicts of per-layer numbers (lists over layers), the lexical floor, and the
    out-of-fold values the summary reads."""

    curves: dict[str, dict[str, list[Any]]]
    lexical_floor: dict[str, Metric]
    reception_logit: np.ndarray  # [L, n] (nan outside reception rows)
    predicted: np.ndarray  # [L, n] categorizer's emotion index (-1 outside its rows)


def _predicted(result: cv.Result, which: int | None = None) -> np.ndarray:
    scores = result.scores if which is None else result.extra_scores[which]
    return np.where(np.isnan(scores[..., 0]), -1, np.nan_to_num(scores).argmax(axis=-1))


def _extra(task: cv.Task) -> np.ndarray:
    """The extra labellings of a probe that `tasks` always gives some (the control task, then the shuffles).
    Without them this fails as indexing None would: with a TypeError."""
    if task.extra is None:
        raise TypeError("this probe's task has no extra labellings (control task and shuffles)")
    return task.extra


def _reception(d: Design, task: cv.Task, fit: cv.Result) -> dict[str, list[Any]]:
    rows = d.rows("affect", "neutral")
    extra = _extra(task)
    y, control = task.labels[rows], extra[0][rows]
    logit, control_logit = fit.scores[:, rows, 0], fit.extra_scores[0][:, rows, 0]
    folds = d.fold[rows]
    auroc = S.auroc_curve(logit, y, folds)
    null = np.array(
        [
            S.auroc_values(fit.extra_scores[j][:, rows, 0], shuffled[rows], folds)
            for j, shuffled in enumerate(extra[1:], start=1)
        ]
    ).reshape(-1, len(auroc))
    return {
        "auroc": auroc,
        "control_auroc": S.auroc_curve(control_logit, control, folds),
        "selectivity": S.auroc_difference_curve(logit, y, control_logit, control, folds),
        "null": S.null_summary(np.array([m.value for m in auroc]), null),
    }


def _categorization(d: Design, task: cv.Task, fit: cv.Result) -> dict[str, list[Any]]:
    rows = d.rows("affect")
    extra = _extra(task)
    correct = (_predicted(fit)[:, rows] == task.labels[rows]).astype(float)
    control = (_predicted(fit, 0)[:, rows] == extra[0][rows]).astype(float)
    null = np.array(
        [
            (_predicted(fit, j)[:, rows] == shuffled[rows]).mean(axis=1)
            for j, shuffled in enumerate(extra[1:], start=1)
        ]
    ).reshape(-1, correct.shape[0])
    return {
        "accuracy": S.proportion_curve(correct),
        "control_accuracy": S.proportion_curve(control),
        "selectivity": S.mean_curve(correct - control),
        "null": S.null_summary(correct.mean(axis=1), null),
    }


def _keyword(d: Design, free: cv.Result, rich: cv.Result) -> dict[str, list[Any]]:
    both = d.stories("affect", "keyword_rich")
    free_rows, rich_rows = both[:, 0], both[:, 1]

    def right(fit: cv.Result, rows: np.ndarray) -> np.ndarray:
        return (_predicted(fit)[:, rows] == d.emotion[rows]).astype(float)

    return {
        "free_to_rich": S.proportion_curve(right(free, d.rows("keyword_rich"))),
        "rich_to_rich": S.proportion_curve(right(rich, d.rows("keyword_rich"))),
        "rich_to_free": S.proportion_curve(right(rich, d.rows("affect"))),
        "gap_free_trained": S.mean_curve(right(free, rich_rows) - right(free, free_rows)),
        "gap_rich_trained": S.mean_curve(right(rich, rich_rows) - right(rich, free_rows)),
    }


def _transfer(d: Design, reception: cv.Result, categorization: cv.Result) -> dict[str, list[Any]]:
    """Transfer items against the battery's neutral controls (out of fold), and their own emotions."""
    items = d.rows("affect", transfer=True)
    both = np.concatenate([items, d.rows("neutral")])
    return {
        "reception_auroc": S.auroc_curve(
            reception.scores[:, both, 0], (d.kind[both] != "neutral").astype(int), d.fold[both]
        ),
        "categorization_accuracy": S.proportion_curve(
            (_predicted(categorization)[:, items] == d.emotion[items]).astype(float)
        ),
    }


def _geometry(d: Design, X: np.ndarray) -> dict[str, list[Any]]:
    X = geometry.standardised(X[:, ~d.transfer])
    affect = d.rows("affect")
    out: dict[str, list[Any]] = {
        "rsa": geometry.rsa_curve(X[:, affect], [EMOTIONS[e] for e in d.emotion[affect]])
    }
    stories = d.stories("affect", "keyword_rich", "neutral")
    if len(stories) >= 2:
        free, rich, neutral = (X[:, stories[:, j]].transpose(1, 0, 2) for j in range(3))
        out["direction_cosine"] = geometry.direction_cosine_curve(rich - neutral, free - neutral)
    return out


def _lexical_floor(d: Design, t: dict[str, cv.Task], settings: Settings) -> dict[str, Metric]:
    bow = lexical_features(d.texts)
    rec_task, cat_task = (
        cv.Task(t[n].train, t[n].test, t[n].labels, t[n].n_classes) for n in ("reception", "categorization")
    )
    rec = cv.cross_validate(bow, rec_task, d.fold, d.pair, d.strata, settings.cv)
    cat = cv.cross_validate(bow, cat_task, d.fold, d.pair, d.strata, settings.cv)
    rows, affect = d.rows("affect", "neutral"), d.rows("affect")
    return {
        "reception_auroc": S.auroc_curve(rec.scores[:, rows, 0], rec_task.labels[rows], d.fold[rows])[0],
        "categorization_accuracy": S.proportion_curve(
            (_predicted(cat)[:, affect] == d.emotion[affect]).astype(float)
        )[0],
    }


def analyse(X: np.ndarray, d: Design, settings: Settings) -> Analysis:
    """Every probe on every layer of X [L, n_items, hidden]."""
    t = tasks(d, settings)
    fits = {
        name: cv.cross_validate(X, task, d.fold, d.pair, d.strata, settings.cv) for name, task in t.items()
    }
    curves = {
        "reception": _reception(d, t["reception"], fits["reception"]),
        "categorization": _categorization(d, t["categorization"], fits["categorization"]),
        "geometry": _geometry(d, X),
    }
    if "keyword_rich" in fits:
        curves["keyword"] = _keyword(d, fits["categorization"], fits["keyword_rich"])
    if d.transfer.any():
        curves["transfer"] = _transfer(d, fits["reception"], fits["categorization"])
    return Analysis(
        curves,
        _lexical_floor(d, t, settings),
        fits["reception"].scores[..., 0],
        _predicted(fits["categorization"]),
    )
