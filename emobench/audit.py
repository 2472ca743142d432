"""Leakage audit for keyword-free vignette batteries (the guarantees of AIPsy-Affect, arXiv 2604.23719).

A keyword-free item must let a reader infer the emotion from the situation only. Three checks catch
items that leak it some other way:

1. **lexicon**: no emotion word (name, inflection, synonym; `emobench/lexicon/emotion_words.txt`)
   appears in an affect or neutral item; every keyword-rich item does name its emotion;
2. **bag of words**: a multinomial naive Bayes trained on the keyword-rich items must stay near chance
   on the keyword-free affect items it did not see, else the battery's *vocabulary* gives the label away;
3. **pair match**: each affect item and its neutral control have the same number of sentences and
   lengths within a tolerance (15% by default), so a detector cannot tell them apart by shape.

The item schema (one JSON object per line, or a CSV with the same columns) is shared with
`tasks/vignettes/task.py`: `id`, `pair_id`, `kind` (affect | neutral | keyword_rich), `emotion` (one of
`EMOTIONS`, empty for neutral items), `text`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .data import check_unique_ids, read_csv, read_jsonl, require
from .errors import DataError

EMOTIONS = ("joy", "trust", "fear", "surprise", "sadness", "disgust", "anger", "anticipation")
KINDS = ("affect", "neutral", "keyword_rich")
LEXICON_PATH = Path(__file__).resolve().parent / "lexicon" / "emotion_words.txt"
DEFAULT_MAX_LENGTH_DIFF = 0.15

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# a sentence ends at . ! ? (and a closing quote) before a capital or the end; titles do not end one
_SENTENCE_END = re.compile(
    r"(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)[.!?]['\"’”]?"
    r"(?=\s+['\"‘“]?[A-Z0-9]|\s*$)"
)


@dataclass(frozen=True)
class Item:
    """One battery item. `emotion` is a Plutchik primary (None for neutral items); `label` keeps the
    dataset's own emotion value where it has one (AIPsy-Affect's "rage", "terror", ...)."""

    id: str
    pair_id: str
    kind: str
    emotion: str | None
    text: str
    path: str = ""
    line: int = 0
    label: str | None = None

    @property
    def keyword_free(self) -> bool:
        return self.kind in ("affect", "neutral")

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class AuditReport:
    items: int
    problems: list[str] = field(default_factory=list)
    keyword_hits: int = 0
    bow: dict[str, Any] = field(default_factory=dict)
    pairs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---- reading items ------------------------------------------------------------------------------
def read_items(path: str | Path) -> list[Item]:
    """Validated items of a battery file (.jsonl or .csv); a bad row raises DataError with its line."""
    path = Path(path)
    rows = read_csv(path) if path.suffix in (".csv", ".tsv") else read_jsonl(path)
    items: list[Item] = []
    for line, row in rows:
        require(path, line, row, "id", "kind", "text")
        kind = str(row["kind"]).strip()
        if kind not in KINDS:
            raise DataError(path, f"kind {kind!r} is not one of {', '.join(KINDS)}", line)
        emotion = str(row.get("emotion") or "").strip().lower() or None
        if kind == "neutral":
            emotion = None
        elif emotion not in EMOTIONS:
            raise DataError(path, f"emotion {row.get('emotion')!r} is not one of {', '.join(EMOTIONS)}", line)
        text = str(row["text"]).strip()
        if not text:
            raise DataError(path, "empty text", line)
        items.append(
            Item(str(row["id"]), str(row.get("pair_id") or row["id"]), kind, emotion, text, str(path), line)
        )
    check_unique_ids(path, [(it.id, it.line) for it in items])
    _check_pairs(path, items)
    return items


def _check_pairs(path: Path, items: list[Item]) -> None:
    """At most one affect and one neutral per pair; a keyword-rich item names the pair's emotion."""
    by_pair: dict[str, dict[str, Item]] = {}
    for it in items:
        slot = by_pair.setdefault(it.pair_id, {})
        if it.kind in slot:
            raise DataError(
                path,
                f"pair {it.pair_id!r} has a second {it.kind} item (first on line {slot[it.kind].line})",
                it.line,
            )
        slot[it.kind] = it
    for slot in by_pair.values():
        affect, rich = slot.get("affect"), slot.get("keyword_rich")
        if affect and rich and affect.emotion != rich.emotion:
            raise DataError(
                path,
                f"keyword-rich item {rich.id!r} is labelled {rich.emotion}, its affect "
                f"item {affect.id!r} {affect.emotion}",
                rich.line,
            )


def pairs(items: list[Item]) -> dict[str, dict[str, Item]]:
    """pair_id -> {kind: item}."""
    out: dict[str, dict[str, Item]] = {}
    for it in items:
        out.setdefault(it.pair_id, {})[it.kind] = it
    return out


# ---- 1. lexicon -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lexicon:
    words: dict[str, str]  # exact word -> category
    prefixes: tuple[tuple[str, str], ...]  # (prefix, category)
    phrases: tuple[tuple[tuple[str, ...], str], ...]  # (word sequence, category)

    def find(self, text: str) -> list[tuple[str, str]]:
        """(word or phrase as written, category) for every emotion keyword in `text`, in order."""
        tokens = _WORD.findall(text.lower().replace("’", "'"))
        hits: list[tuple[str, str]] = []
        for i, tok in enumerate(tokens):
            base = tok[:-2] if tok.endswith("'s") else tok
            cat = self.words.get(tok) or self.words.get(base)
            if cat is None:
                cat = next((c for p, c in self.prefixes if base.startswith(p)), None)
            if cat is not None:
                hits.append((tok, cat))
            for seq, pcat in self.phrases:
                if tuple(tokens[i : i + len(seq)]) == seq:
                    hits.append((" ".join(seq), pcat))
        return hits


def load_lexicon(path: str | Path = LEXICON_PATH) -> Lexicon:
    return _load_lexicon(str(path))


@lru_cache(maxsize=4)
def _load_lexicon(path: str) -> Lexicon:
    words: dict[str, str] = {}
    prefixes: list[tuple[str, str]] = []
    phrases: list[tuple[tuple[str, ...], str]] = []
    category = None
    for line_no, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            category = line.strip("[] ")
            continue
        if category is None:
            raise DataError(path, "term before the first [category] header", line_no)
        for term in (t.strip().lower() for t in line.split(",")):
            if not term:
                continue
            if " " in term:
                phrases.append((tuple(term.replace("’", "'").split()), category))
            elif term.endswith("*"):
                prefixes.append((term[:-1], category))
            else:
                words[term] = category
    return Lexicon(words, tuple(prefixes), tuple(phrases))


# ---- 2. bag-of-words leakage ---------------------------------------------------------------------------
# English function words: dropped so that the classifier sees content vocabulary, not pronoun or
# article frequencies (with 16 training items those are noise that looks like signal)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "so",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "into",
        "onto",
        "over",
        "under",
        "up",
        "down",
        "out",
        "off",
        "as",
        "is",
        "was",
        "were",
        "be",
        "been",
        "being",
        "had",
        "has",
        "have",
        "do",
        "did",
        "does",
        "it",
        "its",
        "it's",
        "he",
        "him",
        "his",
        "she",
        "her",
        "hers",
        "they",
        "them",
        "their",
        "we",
        "us",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "who",
        "whom",
        "which",
        "what",
        "when",
        "where",
        "while",
        "not",
        "no",
        "nor",
        "than",
        "too",
        "very",
        "can",
        "could",
        "would",
        "should",
        "will",
        "just",
        "only",
        "own",
        "same",
        "other",
        "another",
        "any",
        "each",
        "every",
        "all",
        "both",
        "some",
        "such",
        "more",
        "most",
        "few",
        "once",
        "again",
        "still",
        "even",
        "also",
        "before",
        "after",
        "about",
        "against",
        "between",
        "through",
        "during",
        "above",
        "below",
    ]
)


def tokens(text: str) -> list[str]:
    """Lower-cased content words of `text`."""
    return [w for w in _WORD.findall(text.lower().replace("’", "'")) if w not in STOPWORDS]


def naive_bayes(
    train: list[tuple[str, str]], test: list[str], labels: tuple[str, ...] = EMOTIONS, alpha: float = 1.0
) -> list[str]:
    """Multinomial naive Bayes with Laplace smoothing: the simplest bag-of-words classifier there is,
    which is the point (a vocabulary shared across a category is exactly what it exploits)."""
    vocab = {w: i for i, w in enumerate(sorted({w for text, _ in train for w in tokens(text)}))}
    counts = np.full((len(labels), len(vocab)), alpha)
    prior = np.ones(len(labels))  # add-one prior: a class absent from training is still possible
    for text, label in train:
        k = labels.index(label)
        prior[k] += 1
        for w in tokens(text):
            counts[k, vocab[w]] += 1
    log_lik = np.log(counts / counts.sum(axis=1, keepdims=True))
    log_prior = np.log(prior / prior.sum())
    preds = []
    for text in test:
        idx = [vocab[w] for w in tokens(text) if w in vocab]
        scores = log_prior + (log_lik[:, idx].sum(axis=1) if idx else 0.0)
        preds.append(labels[int(np.argmax(scores))])
    return preds


def bow_leakage(items: list[Item]) -> dict[str, Any]:
    """Train naive Bayes on the keyword-rich items (plus one pseudo-document per category made of its
    lexicon words, so that 2 items a category suffice to learn the keywords), then test it on the
    keyword-free affect items of the pairs it was not trained on.

    `near_chance` is True when the 95% Wilson interval of the accuracy includes chance (1/8): the
    vocabulary that names emotions does not transfer to the keyword-free items.
    """
    rich = [it for it in items if it.kind == "keyword_rich"]
    trained_pairs = {it.pair_id for it in rich}
    test = [it for it in items if it.kind == "affect" and it.pair_id not in trained_pairs]
    chance = 1 / len(EMOTIONS)
    if not rich or not test:
        return {"skipped": "needs keyword-rich items and affect items of other pairs", "chance": chance}
    lexicon_docs = _lexicon_documents(load_lexicon())
    train = [(it.text, str(it.emotion)) for it in rich] + lexicon_docs
    preds = naive_bayes(train, [it.text for it in test])
    acc = M.proportion([float(p == it.emotion) for p, it in zip(preds, test, strict=True)])
    # the same classifier on held-out keyword-rich items (leave one out) shows that it does pick up
    # emotion words when they are there: near chance on keyword-free items is then a real finding
    loo = [
        naive_bayes([(o.text, str(o.emotion)) for o in rich if o is not it] + lexicon_docs, [it.text])[0]
        == it.emotion
        for it in rich
    ]
    return {
        "accuracy": acc.value,
        "ci_low": acc.ci_low,
        "ci_high": acc.ci_high,
        "n_test": acc.n,
        "n_train": len(rich),
        "chance": chance,
        "near_chance": acc.ci_low <= chance,
        "keyword_rich_loo_accuracy": float(np.mean(loo)),
    }


def _lexicon_documents(lexicon: Lexicon) -> list[tuple[str, str]]:
    docs: dict[str, list[str]] = {}
    for word, cat in lexicon.words.items():
        if cat in EMOTIONS:
            docs.setdefault(cat, []).append(word)
    return [(" ".join(words), cat) for cat, words in sorted(docs.items())]


# ---- 3. pair match ------------------------------------------------------------------------------------
def sentence_count(text: str) -> int:
    return max(1, len(_SENTENCE_END.findall(text.strip())))


def pair_report(items: list[Item], max_length_diff: float = DEFAULT_MAX_LENGTH_DIFF) -> list[dict[str, Any]]:
    """One row per affect item: its neutral control, length ratio (neutral/affect characters), sentence
    counts, and whether the pair is matched."""
    rows = []
    for pid, slot in pairs(items).items():
        affect, neutral = slot.get("affect"), slot.get("neutral")
        if affect is None:
            continue
        row: dict[str, Any] = {
            "pair_id": pid,
            "affect": affect.id,
            "neutral": neutral.id if neutral else None,
        }
        if neutral is not None:
            ratio = len(neutral.text) / len(affect.text)
            row.update(
                length_ratio=round(ratio, 3),
                sentences_affect=sentence_count(affect.text),
                sentences_neutral=sentence_count(neutral.text),
            )
            row["matched"] = (
                abs(ratio - 1) <= max_length_diff and row["sentences_affect"] == row["sentences_neutral"]
            )
        else:
            row["matched"] = False
        rows.append(row)
    return rows


# ---- the audit ----------------------------------------------------------------------------------------
def audit(
    items: list[Item],
    max_length_diff: float = DEFAULT_MAX_LENGTH_DIFF,
    lexicon: Lexicon | None = None,
    require_neutral: bool = True,
) -> AuditReport:
    """Run the three checks. Problems are one line each: `file:line: item id: what`."""
    lexicon = lexicon or load_lexicon()
    report = AuditReport(items=len(items))
    for it in items:
        hits = lexicon.find(it.text)
        if it.keyword_free:
            for word, cat in hits:
                report.keyword_hits += 1
                report.problems.append(
                    f"{it.where}: {it.id}: emotion keyword {word!r} ({cat}) in a {it.kind} item"
                )
        elif not any(cat == it.emotion for _, cat in hits):
            report.problems.append(f"{it.where}: {it.id}: keyword-rich item names no {it.emotion} word")
    report.pairs = pair_report(items, max_length_diff)
    by_id = {it.id: it for it in items}
    for row in report.pairs:
        affect = by_id[row["affect"]]
        if row["neutral"] is None:
            if require_neutral:
                report.problems.append(
                    f"{affect.where}: {affect.id}: no neutral control with pair_id {row['pair_id']!r}"
                )
            continue
        neutral = by_id[row["neutral"]]
        if abs(row["length_ratio"] - 1) > max_length_diff:
            report.problems.append(
                f"{neutral.where}: {neutral.id}: length {len(neutral.text)} vs "
                f"{len(affect.text)} for {affect.id} (ratio {row['length_ratio']:.2f}, "
                f"allowed ±{max_length_diff:.0%})"
            )
        if row["sentences_affect"] != row["sentences_neutral"]:
            report.problems.append(
                f"{neutral.where}: {neutral.id}: {row['sentences_neutral']} sentences vs "
                f"{row['sentences_affect']} in {affect.id}"
            )
    report.bow = bow_leakage(items)
    return report


def counts_by(items: list[Item]) -> dict[str, Counter]:
    """kind -> Counter of emotions (for summaries)."""
    out: dict[str, Counter] = {}
    for it in items:
        out.setdefault(it.kind, Counter())[it.emotion or "-"] += 1
    return out
