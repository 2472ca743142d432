"""A choice answer's confidence, from the best source the backend offers, kept in the sample's trace.

Three sources, each recorded under its name in `trace["confidence"]` (emobench/calibration.py turns
them into ECE, Brier, NLL and selective-prediction figures):

- `loglikelihood`: local backends rank the options by log-likelihood (multiple_choice tasks); the
  softmax of those scores is a distribution over the options.
- `top_logprobs`: OpenAI-compatible APIs that return `logprobs`/`top_logprobs` give, at the token that
  states the answer letter (the `B` of `{"answer": "B"}`), the log-probabilities of the other letters
  too; renormalised over the option letters they are a distribution over the options. `mass` is how
  much of the token's probability the option letters held before renormalising.
- `verbalised`: the model states `"confidence": 0-100` in its reply (the `confidence` variant); a
  number, not a distribution. A reply without a readable one records `value: null` (counted, never
  a crash).

A distribution is stored with `gold`, the index of the right answer in the task's answer space, so
that NLL and the multiclass Brier score need nothing else from the sample.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from . import parsing
from .types import Completion

TRACE_KEY = "confidence"
SOURCES = ("loglikelihood", "top_logprobs", "verbalised")  # best first
# where a reply states its answer: after a JSON key (`"answer": "`) or an answer line (`Answer: `)
_ANSWER_SLOT = re.compile(
    r'(?:"[^"\n]{1,40}"\s*:\s*"?\s*|answer\s*(?:is)?\s*[:：]?\s*\**\s*)$', re.IGNORECASE
)
_VERBAL_LINE = re.compile(r"confidence\W{0,3}(\d+(?:\.\d+)?)\s*%?", re.IGNORECASE)


def gold_index(space: Sequence[Any], target: Any) -> int | None:
    """Where the right answer is in the task's answer space (None when it is not one of them)."""
    for i, answer in enumerate(space):
        if answer == target:
            return i
    return None


def softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def from_loglikelihoods(scores: Sequence[float], gold: int | None) -> dict[str, Any]:
    """The options' softmax: the distribution the log-likelihood ranking already implies."""
    return {"probs": softmax(scores), "gold": gold}


def top_logprobs_wanted(letters: Sequence[str] | None) -> int:
    """How many alternatives per token to ask for: every option letter plus room for the same letters
    with a space in front and a quote mark (a backend caps it at what its API allows); 0 when the
    answers are not letters."""
    return 2 * len(letters) + 1 if letters else 0


def letter_distribution(completion: Completion, letters: Sequence[str]) -> dict[str, Any] | None:
    """The reply's answer-letter distribution over `letters`, renormalised, and the mass they held; None
    when the server gave no log-probabilities or no letter token states an answer.

    The answer token is the last letter token that follows a JSON key or an answer line (the final
    answer of a reasoning reply), else the first token that is one of the option letters."""
    entries = completion.letter_logprobs
    if not entries:
        return None
    text = completion.text
    found = [e for e in entries if _letter_at(text, e.get("at")) in letters]
    stated = [e for e in found if _ANSWER_SLOT.search(text[max(0, int(e["at"]) - 60) : int(e["at"])])]
    entry = stated[-1] if stated else (found[0] if found else None)
    if entry is None:
        return None
    raw = [math.exp(float(entry["logprobs"][x])) if x in entry["logprobs"] else 0.0 for x in letters]
    mass = sum(raw)
    if mass <= 0:
        return None
    return {"probs": [p / mass for p in raw], "mass": mass}


def from_draws(draws: Sequence[dict[str, Any] | None], gold: int | None) -> dict[str, Any] | None:
    """One distribution per sample: the mean over the draws that have one (a voting protocol asks
    several times), with the mean mass and how many draws contributed."""
    have = [d for d in draws if d is not None]
    if not have:
        return None
    n = len(have)
    probs = [sum(d["probs"][i] for d in have) / n for i in range(len(have[0]["probs"]))]
    return {"probs": probs, "gold": gold, "mass": sum(d["mass"] for d in have) / n, "draws": n}


def verbalised(text: str) -> float | None:
    """The confidence a reply states, 0-100 read as 0-1: its JSON `confidence` field, else a
    `Confidence: 80` line; None when there is none or it is not a number from 0 to 100."""
    if not isinstance(text, str):
        return None
    text = parsing.strip_reasoning(text)
    value = parsing.json_field(text, "confidence")
    if value is None:
        lines = _VERBAL_LINE.findall(text)
        value = lines[-1] if lines else None
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    x = float(value) if isinstance(value, (int, float)) else parsing.number(str(value))
    return x / 100 if x is not None and 0 <= x <= 100 else None


def record(trace: dict[str, Any], source: str, entry: dict[str, Any]) -> None:
    """Put one source's confidence into a sample's trace."""
    trace.setdefault(TRACE_KEY, {})[source] = entry


def _letter_at(text: str, at: Any) -> str | None:
    return text[at] if isinstance(at, int) and 0 <= at < len(text) else None
