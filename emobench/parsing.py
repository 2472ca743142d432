"""Turning model text into answers. Every function here returns None for 'unparseable' and never
raises, whatever the text: a model answer must never crash a run (tested with hypothesis).

Only the *final* answer counts: reasoning before it (chain-of-thought) is skipped by reading the last
JSON block or the last explicit 'Answer:' line first.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_THINK = re.compile(r"^.*?</think>", re.DOTALL)
_ANSWER_LINE = re.compile(r"(?:final\s+answer|answer)\s*(?:is)?\s*[:：]?\s*[\(\[]?\s*([A-Za-z0-9][^\n]*)", re.IGNORECASE)


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


def choice_index(text: str, choices: list[str], json_keys: tuple[str, ...] = ("answer",)) -> int | None:
    """Index of the chosen option in `choices`, read from the final answer in `text`.

    Order: JSON field (letter or option text) -> 'Answer: X' line -> a reply that is only a letter ->
    the option text named last in the reply. Ambiguous replies (two options named equally last) are
    unparseable rather than guessed.
    """
    if not choices or not isinstance(text, str):
        return None
    text = strip_reasoning(text)
    n = len(choices)
    value = json_field(text, *json_keys)
    if value is not None and not isinstance(value, (dict, list)):
        idx = letter_index(value, n) if len(str(value).strip()) <= 3 else None
        if idx is None:
            idx = _match_choice_text(str(value), choices)
        if idx is not None:
            return idx
    lines = _ANSWER_LINE.findall(text)
    if lines:
        last = lines[-1].strip()
        idx = letter_index(last, n) if re.match(r"^[\(\[]?[A-Za-z](?:[\)\]\.:,]|\s|$)", last) else None
        if idx is None:
            idx = _match_choice_text(last, choices)
        if idx is not None:
            return idx
    stripped = text.strip().strip(".*` ")
    if len(stripped) <= 3:
        idx = letter_index(stripped, n)
        if idx is not None:
            return idx
    return _match_choice_text(text, choices)


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s&]", " ", s.lower())).strip()


def _match_choice_text(text: str, choices: list[str]) -> int | None:
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


def integer(text: str, json_keys: tuple[str, ...] = ("index", "answer"), lo: int | None = None,
            hi: int | None = None) -> int | None:
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
