"""Scoring a sample's replies, and the run-log record of a scored sample.

One path for every place that turns model text into a verdict: `emobench run` (the runner's
`answer_sample`), the refine variant's dev evaluation, `emobench rescore` and `emobench import`. So a
rescored or imported run parses, votes, scores and decides outcomes exactly as a live run does.

Per sample: each reply is parsed (a parser that raises reads as unparseable), the draws are combined
with `task.combine` (a vote), the answer is scored, and the outcome is `correct`/`incorrect` by
`task.is_correct`, or `unparseable` when nothing could be read or the scorer failed. Tasks with a
strict reading (choice tasks) also record whether the answer was stated rather than guessed.

A judged task (`task.rubric(sample)` is not None: emobench/judge.py) takes its score from the judges'
verdicts recorded in the sample's trace, never from a new judge call: the panel mean, or no score at all
(`unparseable`, the judge named in the error) when no judge's verdict could be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import Outcome
from .task import STRICT_KEY, Task
from .types import Message, Sample, SampleRecord, Usage, record_key, stable_hash

PROMPT_CHARS_KEPT = 20_000


@dataclass(frozen=True)
class Scored:
    """The verdict on one sample's replies. `strict`: whether the answer was read strictly (stated in a
    JSON field, an answer line or a one-option reply, not guessed from free text); None when the task
    has no strict reading."""

    parsed: Any
    score: float | None  # None: judged, and no judge's verdict could be read
    outcome: Outcome  # correct, incorrect or unparseable
    error: str | None = None
    strict: bool | None = None

    def annotate(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """`metadata` with this verdict's strictness under `strict_parse` (absent when not applicable)."""
        out = {k: v for k, v in metadata.items() if k != STRICT_KEY}
        if self.strict is not None:
            out[STRICT_KEY] = self.strict
        return out


def score_replies(
    task: Task, sample: Sample, replies: list[str], judgement: dict[str, Any] | None = None
) -> Scored:
    """Parse, vote, score and judge. Never raises on a reply or a scorer bug. `judgement`: the judges'
    recorded verdicts (the trace's `judge` entry) for a judged task."""
    parsed = read_answer(task, sample, replies)
    strict = _strictly_read(task, sample, replies, parsed)
    rubric = task.rubric(sample)
    if parsed is None:  # a judged task's unreadable reply gets the lowest score its rubric allows
        return Scored(None, rubric.low if rubric else 0.0, "unparseable", strict=strict)
    if rubric is not None:
        score = judged_score(judgement)
        if score is None:
            return Scored(parsed, None, "unparseable", _no_verdict(judgement), strict)
        return Scored(parsed, score, "correct" if rubric.passes(score) else "incorrect", strict=strict)
    try:
        score = float(task.score(parsed, sample))
    except Exception as exc:
        return Scored(parsed, 0.0, "unparseable", f"scoring failed: {type(exc).__name__}: {exc}", strict)
    return Scored(parsed, score, "correct" if task.is_correct(score) else "incorrect", strict=strict)


def read_answer(task: Task, sample: Sample, replies: list[str]) -> Any:
    """The sample's answer: each reply parsed, the draws combined (None: nothing readable)."""
    return task.combine([_parse(task, text, sample) for text in replies])


def judged_score(judgement: dict[str, Any] | None) -> float | None:
    """The panel's score of a judged sample: the mean of its judges' readable scores (None: none)."""
    scores = [j["score"] for j in (judgement or {}).get("judges", []) if j.get("score") is not None]
    return sum(scores) / len(scores) if scores else None


def _no_verdict(judgement: dict[str, Any] | None) -> str:
    if not judgement:
        return "not judged: no judge verdict is recorded for this reply (run it with --judge)"
    names = ", ".join(j["judge"] for j in judgement.get("judges", []))
    return f"judge reply unreadable: no verdict with every criterion in range ({names})"


def _parse(task: Task, text: str, sample: Sample) -> Any:
    try:
        return task.parse(text, sample)
    except Exception:  # a parser bug on a strange reply reads as unparseable
        return None


def _strictly_read(task: Task, sample: Sample, replies: list[str], parsed: Any) -> bool | None:
    """True when the vote over the strictly read draws gives the headline answer; None when the task
    has no strict reading."""
    strict = []
    for text in replies:
        try:
            strict.append(task.parse_strict(text, sample))
        except NotImplementedError:
            return None
        except Exception:
            strict.append(None)
    return None if not replies else parsed is not None and task.combine(strict) == parsed


def sample_record(
    task: Task,
    variant: str,
    sample: Sample,
    prompt: list[Message] | None,
    replies: list[str] | None,
    trace: dict[str, Any],
    usage: Usage,
    latency_s: float,
    error: str | None = None,
) -> SampleRecord:
    """The samples.jsonl line of one sample: scored when there are replies, else an `error` (the model
    call failed: `error` says why). The prompt, when the variant gave none, is the task's own."""
    messages = prompt if prompt is not None else _render(task, sample)
    scored = score_replies(task, sample, replies, trace.get("judge")) if replies is not None else None
    metadata = dict(sample.metadata)
    if trace:
        metadata["trace"] = trace
    if replies is not None and len(replies) > 1:
        metadata["responses"] = replies
    if scored is not None:
        metadata = scored.annotate(metadata)
    return SampleRecord(
        key=record_key(task.name, variant, sample.id),
        sample_id=sample.id,
        task=task.name,
        variant=variant,
        prompt=prompt_text(messages),
        prompt_hash=stable_hash(messages)[:16],
        response=replies[0] if replies else None,
        parsed=scored.parsed if scored else None,
        target=sample.target,
        score=scored.score if scored else None,
        outcome=scored.outcome if scored else "error",
        error=scored.error if scored else error,
        latency_s=round(latency_s, 4),
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        calls=usage.calls,
        cached_calls=usage.cached_calls,
        cost_usd=usage.cost_usd,
        metadata=metadata,
    )


def prompt_text(messages: list[Message]) -> str:
    """The prompt as the run log keeps it: every message, the middle elided past 20,000 characters."""
    text = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
    if len(text) > PROMPT_CHARS_KEPT:
        half = PROMPT_CHARS_KEPT // 2
        text = f"{text[:half]}\n…[{len(text) - PROMPT_CHARS_KEPT} characters not kept]…\n{text[-half:]}"
    return text


def _render(task: Task, sample: Sample) -> list[Message]:
    """The task's prompt for the log; a template that fails on this sample must not lose the record."""
    try:
        return task.render(sample)
    except Exception:
        return [{"role": "user", "content": str(sample.input)[:2000]}]
