"""Turning model text into answers. Every function here returns None for 'unparseable' and never
raises, whatever the text: a model answer must never crash a run (tested with hypothesis).

Only the *final* answer counts: reasoning before it (chain-of-thought) is skipped by reading the last
JSON block or the last explicit 'Answer:' line first.

Choice answers have two readings. The *strict* one takes only an answer the reply states: a JSON
answer field, an 'Answer: X' line, or a reply that is nothing but one option. The *lenient* one (the
headline) also guesses from free text (a hedged 'the answer is probably B', the option named last), so
a score can be split into what was stated and what was guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_THINK = re.compile(r"^.*?</think>", re.DOTALL)
# 'Answer: B', 'The answer is (B)', '**Final answer:** B'
_ANSWER_LINE = re.compile(
    r"\b(?:final\s+answer|answer)\b[*\s]*(?:is\b)?[*\s]*[:：]?[*\s]*[\(\[]?\s*([A-Za-z0-9][^\n]*)",
    re.IGNORECASE,
)
_LETTER_FIRST = re.compile(
    r"^[\(\[]?([A-Za-z])(?:[\)\]\.:,]|\s|$)\s*(.*)$", re.DOTALL
)  # 'B', 'B) text', 'B because'
_OPTION_MARK = re.compile(r"(?<![\w])[\(\[]?([A-Za-z])[\)\]\.:]\s*\w")  # 'A) Joy', '(b) sadness', 'C. Anger'
# a capital letter standing alone ('probably B', '(B)'), not the pronoun in "I think"/"I'd"
_LONE_LETTER = re.compile(r"(?<![\w'])[\(\[]?(?!I\s+[a-z])([A-Z])[\)\]]?(?![\w'])")


def strip_reasoning(text: str) -> str:
    """Drop a `<think>...</think>` preamble (Qwen-style reasoning models), as LongEmotion does."""
    return _THINK.sub("", text, count=1) if "</think>" in text else text


def json_objects(text: str) -> list[dict[str, Any]]:
    """All JSON objects found in `text`, in order: the whole text, fenced blocks, then bare {...}."""
    found: list[dict[str, Any]] = []
    candidates = [text.strip()] + [m.strip() for m in _FENCE.findall(text)]
    for cand in candidates:
        obj = _loads(cand)
        if isinstance(obj, dict):
            found.append(obj)
    if not found:
        decoder = json.JSONDecoder()
        for match in re.finditer(r"\{", text):
            try:
                obj, _ = decoder.raw_decode(text, match.start())
            except (ValueError, RecursionError):
                continue
            if isinstance(obj, dict):
                found.append(obj)
    return found


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def json_field(text: str, *keys: str) -> Any:
    """Value of the first of `keys` in the last JSON object that has one (case-insensitive keys)."""
    wanted = [k.lower() for k in keys]
    for obj in reversed(json_objects(text)):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        for key in wanted:
            if key in lowered:
                return lowered[key]
    for key in keys:  # a truncated or sloppy JSON: "answer": "B"
        m = re.findall(rf'"{re.escape(key)}"\s*:\s*"?([^",}}\n]+)"?', text, re.IGNORECASE)
        if m:
            return m[-1].strip()
    return None


def letter_index(value: Any, n_choices: int) -> int | None:
    """'B', 'b)', '(B)', 'B. text' -> 1; None when out of range or not a letter."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value < n_choices else None
    s = str(value).strip().strip("*").strip()
    m = re.match(r"^[\(\[]?([A-Za-z])(?:[\)\]\.:,]|\s|$)", s)
    if m:
        idx = ord(m.group(1).upper()) - ord("A")
        return idx if 0 <= idx < n_choices else None
    return None


def choice_index(
    text: str, choices: list[str], json_keys: tuple[str, ...] = ("answer",), strict: bool = False
) -> int | None:
    """Index of the chosen option in `choices`, read from the final answer in `text`.

    Strict reading, in order: the JSON answer field, then the last 'Answer: X' line, each naming the
    option at its start (a letter, '(B)', 'B) text', or the option's text); then a reply that is only
    one option ('B', 'B) Sadness', 'Sadness'). With `strict=False` (the headline reading) it goes on
    guessing: a lone capital letter in the answer field or line ('the answer is probably B'), or the
    option named last in it, else the option named last in the reply. A reply that lists the options
    ('A) Joy B) Sadness') has that list ignored, so a mere echo of the question is unparseable; two
    options named equally last are unparseable too, rather than guessed.
    """
    if not choices or not isinstance(text, str):
        return None
    stated, guessed = _choice_readings(text, tuple(choices), tuple(json_keys))
    return stated if strict else guessed


@lru_cache(maxsize=32)
def _choice_readings(
    text: str, choices: tuple[str, ...], json_keys: tuple[str, ...]
) -> tuple[int | None, int | None]:
    """(strict, lenient) readings, computed in one pass and kept for a moment: scoring asks for both
    readings of every reply, one after the other."""
    text = strip_reasoning(text)
    slots: list[Any] = []
    for value in _answer_slots(text, json_keys):
        idx = _stated_choice(value, choices)
        if idx is not None:
            return idx, idx
        slots.append(value)
    idx = _whole_reply_choice(text, choices)
    if idx is not None:
        return idx, idx
    for value in slots:
        idx = _guessed_choice(str(value), choices)
        if idx is not None:
            return None, idx
    return None, _match_choice_text(_without_echo(text, choices), choices)


def _answer_slots(text: str, json_keys: tuple[str, ...]) -> Iterator[Any]:
    """Where a reply states its answer: the JSON answer field, then the last 'Answer:' line (lazily:
    most replies stop at the first)."""
    value = json_field(text, *json_keys) if json_keys else None
    if value is not None and not isinstance(value, (dict, list, bool)):
        yield value
    lines = _ANSWER_LINE.findall(text)
    if lines:
        yield lines[-1]


def _stated_choice(value: Any, choices: Sequence[str]) -> int | None:
    """The option an answer slot names at its start: an index, a letter, or the option's text."""
    if isinstance(value, int):
        return letter_index(value, len(choices))
    s = str(value).strip().strip("*`\"'").strip()
    if _LETTER_FIRST.match(s):
        idx = letter_index(s, len(choices))
        if idx is not None:
            return idx
    t = _norm(s)
    starts = [
        (len(c), i)
        for i, c in enumerate(_norm(c) for c in choices)
        if c and (t == c or t.startswith(c + " "))
    ]
    return max(starts)[1] if starts else None


def _whole_reply_choice(text: str, choices: Sequence[str]) -> int | None:
    """A reply that is nothing but one option: 'B', '(B)', 'B) Sadness', 'Sadness.'."""
    s = text.strip().strip(".*`\"' ")
    if len(s) <= 3:
        return letter_index(s, len(choices))
    m = _LETTER_FIRST.match(s)
    if m:  # a letter, and nothing after it but that option's own text
        idx = letter_index(m.group(1), len(choices))
        if idx is not None and _norm(m.group(2)) == _norm(choices[idx]):
            return idx
    t = _norm(s)
    return next((i for i, c in enumerate(choices) if _norm(c) == t), None)


def _guessed_choice(value: str, choices: Sequence[str]) -> int | None:
    """A hedged answer slot: its only lone capital letter ('probably B because...'), else the option
    whose text it names last."""
    letters = {letter_index(m, len(choices)) for m in _LONE_LETTER.findall(value)} - {None}
    if len(letters) == 1:
        return letters.pop()
    return _match_choice_text(value, choices)


def _without_echo(text: str, choices: Sequence[str]) -> str:
    """`text` without the option list when it repeats two or more options as 'A) Joy', 'B. Sadness':
    an echoed list names every option and says nothing about which one is meant."""
    if len({m.upper() for m in _OPTION_MARK.findall(text)}) < 2:
        return text
    listed = [
        re.compile(rf"(?<![\w])[\(\[]?{chr(65 + i)}[\)\]\.:]\s*{re.escape(c.strip())}(?![\w])", re.IGNORECASE)
        for i, c in enumerate(choices)
        if c.strip()
    ]
    found = [p for p in listed if p.search(text)]
    if len(found) < 2:
        return text
    for pattern in found:
        text = pattern.sub(" ", text)
    return text


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s&]", " ", s.lower())).strip()


def _match_choice_text(text: str, choices: Sequence[str]) -> int | None:
    """The option whose text appears in `text`; exact equality wins, then the last-mentioned one."""
    t = _norm(text)
    if not t:
        return None
    normed = [_norm(c) for c in choices]
    for i, c in enumerate(normed):
        if c and c == t:
            return i
    positions: list[tuple[int, int, int]] = []  # (end position, length, index)
    for i, c in enumerate(normed):
        if not c:
            continue
        pos = t.rfind(c)
        if pos >= 0 and _word_bounded(t, pos, len(c)):
            positions.append((pos + len(c), len(c), i))
    if not positions:
        return None
    positions.sort(reverse=True)
    best = positions[0]
    # an option that is contained in a longer, equally-late option ("Joy" in "Gratitude & Joy")
    rivals = [p for p in positions[1:] if p[0] == best[0] and p[1] == best[1]]
    return None if rivals else best[2]


def _word_bounded(t: str, pos: int, length: int) -> bool:
    before = t[pos - 1] if pos > 0 else " "
    after = t[pos + length] if pos + length < len(t) else " "
    return not before.isalnum() and not after.isalnum()


def integer(
    text: str, json_keys: tuple[str, ...] = ("index", "answer"), lo: int | None = None, hi: int | None = None
) -> int | None:
    """An integer answer (an index), from JSON first, else the last integer in the reply."""
    if not isinstance(text, str):
        return None
    text = strip_reasoning(text)
    value = json_field(text, *json_keys)
    candidates = [value] if value is not None else []
    candidates += list(reversed(re.findall(r"-?\d+", text)))[:1]
    for cand in candidates:
        try:
            n = int(str(cand).strip())
        except (TypeError, ValueError):
            continue
        if (lo is None or n >= lo) and (hi is None or n <= hi):
            return n
    return None


def number(text: str, lo: float | None = None, hi: float | None = None) -> float | None:
    """A number (e.g. a verbalised probability 0-100), the last one in the reply."""
    if not isinstance(text, str):
        return None
    for cand in reversed(re.findall(r"-?\d+(?:\.\d+)?", strip_reasoning(text))):
        try:
            x = float(cand)
        except ValueError:
            continue
        if (lo is None or x >= lo) and (hi is None or x <= hi):
            return x
    return None
