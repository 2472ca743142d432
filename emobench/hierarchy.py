"""Free-text emotion answers scored on a three-tier hierarchy, so that a near answer counts where it is
near: "irritated" for a gold "furious" is right at tier 1 (anger), "irritated" for "annoyed" at tier 2
(the irritation family), "irritation" for "irritated" at tier 3 (the same term).

The hierarchy is emobench's own term list (emobench/lexicon/emotion_hierarchy.txt: 8 primaries, 45
families, 461 word forms, each listed once), in the spirit of Parrott's (2001) tree of primary,
secondary and tertiary emotions. An answer is looked up as a whole, then word by word (phrases of up to
three words first), skipping a term preceded by a negation ("not happy"); the first term found is the
answer. A reply naming no listed term is "unmapped": wrong at every tier, and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import DataError

LEXICON = Path(__file__).resolve().parent / "lexicon" / "emotion_hierarchy.txt"
TIERS = (1, 2, 3)
NEGATIONS = frozenset(
    {"not", "no", "never", "hardly", "nor", "isn't", "wasn't", "don't", "doesn't", "didn't"}
)
_LINE = re.compile(r"^\s*([a-z ]+?)\s*>\s*([a-z ]+?)\s*:\s*(.+)$")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Term:
    """Where a word sits: its primary emotion, its family, and the tertiary term (first form listed)."""

    primary: str
    secondary: str
    term: str

    def path(self, tier: int) -> tuple[str, ...]:
        return (self.primary, self.secondary, self.term)[:tier]


def normalise(text: str) -> str:
    """Lower case, hyphens and runs of spaces read as one space."""
    return " ".join(text.lower().replace("-", " ").split())


class Hierarchy:
    def __init__(self, terms: dict[str, Term], source: Path):
        self.terms = terms
        self.source = source
        self.longest = max(len(form.split()) for form in terms)

    def lookup(self, word: str) -> Term | None:
        return self.terms.get(normalise(word))

    def find(self, text: str) -> Term | None:
        """The term a free-text answer names: the whole text if it is one, else the first listed phrase
        in it (longest first at each position) that no negation precedes."""
        whole = self.lookup(text.strip(" .!?\"'"))
        if whole is not None:
            return whole
        words = _WORD.findall(normalise(text))
        for i in range(len(words)):
            for size in range(min(self.longest, len(words) - i), 0, -1):
                found = self.terms.get(" ".join(words[i : i + size]))
                if found is not None and not (i and words[i - 1] in NEGATIONS):
                    return found
        return None

    def agree(self, answer: Term | None, gold: Term | None, tier: int) -> bool:
        return answer is not None and gold is not None and answer.path(tier) == gold.path(tier)


@lru_cache(maxsize=4)
def load(path: Path = LEXICON) -> Hierarchy:
    """The hierarchy in `path`; a malformed line or a form listed twice is a DataError naming the line."""
    terms: dict[str, Term] = {}
    text = path.read_text(encoding="utf-8")
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        found = _LINE.match(line)
        if not found:
            raise DataError(path, "expected `primary > family: term, term/form, ...`", number)
        primary, secondary = normalise(found.group(1)), normalise(found.group(2))
        for entry in found.group(3).split(","):
            forms = [normalise(f) for f in entry.split("/") if f.strip()]
            for form in forms:
                if form in terms:
                    raise DataError(path, f"{form!r} is listed twice", number)
                terms[form] = Term(primary, secondary, forms[0])
    if not terms:
        raise DataError(path, "no terms")
    return Hierarchy(terms, path)
