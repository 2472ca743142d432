"""The boundary types that flow through the pipeline.

task -> Sample -> (variant) -> ChatRequest -> backend -> Completion -> parse -> score -> SampleRecord

They are plain dataclasses so that every stage can be tested alone and every record can be written
to JSON without custom encoders.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .schema import MetricDict, Outcome

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


@dataclass(frozen=True)
class Sample:
    """One evaluation item.

    `id` must be stable across runs: resume, caching, paired comparison and the leaderboard all
    join on it. `context` holds a long document (long-context tasks) separately from `input` so that
    truncation and retrieval variants can work on it without re-parsing the prompt.
    """

    id: str
    input: str | list[Message]
    target: Any
    choices: list[str] | None = None
    context: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def fingerprint_payload(self) -> str:
        return json.dumps(
            [self.id, self.input, self.choices, self.target, self.context],
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )


@dataclass(frozen=True)
class GenParams:
    """Generation parameters. Part of the cache key and of the manifest."""

    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None

    def merged(self, **overrides: Any) -> GenParams:
        values = {k: v for k, v in overrides.items() if v is not None}
        if isinstance(values.get("stop"), list):
            values["stop"] = tuple(values["stop"])
        return replace(self, **values) if values else self


@dataclass(frozen=True)
class ChatRequest:
    """One model call. `draw` distinguishes repeated samples of the same prompt (self-consistency,
    the EmoBench paper protocol) so that the cache does not serve draw 2 with draw 1's answer.
    `logprobs` > 0 asks a backend that can for that many top alternatives per generated token (the
    first-token confidence of a choice answer); it is in the cache key only when asked, so every other
    request keeps the key it always had."""

    messages: tuple[Message, ...]
    params: GenParams = GenParams()
    draw: int = 0
    logprobs: int = 0

    def cache_payload(self) -> dict[str, Any]:
        payload = {"messages": list(self.messages), "params": asdict(self.params), "draw": self.draw}
        if self.logprobs:
            payload["logprobs"] = self.logprobs
        return payload


@dataclass
class Completion:
    """One reply. `letter_logprobs`, when the request asked for log-probabilities and the server gave
    them: for each generated token that is one capital letter (spaces and quotes aside), its character
    offset in `text` (`at`) and the log-probabilities of the one-capital-letter tokens among its top
    alternatives (`logprobs`; variants such as "B" and " B" merged). That is all a choice answer's
    confidence needs, so it is all the cache keeps. None: no log-probabilities came back."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    letter_logprobs: list[dict[str, Any]] | None = None


@dataclass
class Usage:
    """Cost of answering one sample (summed over every call a variant made)."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cost_usd: float | None = None

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.cached_calls += other.cached_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.seconds += other.seconds
        if other.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + other.cost_usd


@dataclass
class SampleRecord:
    """One line of samples.jsonl: everything needed to rescore, resume, compare and browse. The other
    files of a run directory are typed in emobench/schema.py."""

    key: str
    sample_id: str
    task: str
    variant: str
    prompt: str
    prompt_hash: str
    response: str | None
    parsed: Any
    target: Any
    score: float | None
    outcome: Outcome
    error: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cached_calls: int = 0
    cost_usd: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # the instance dict, not `asdict`: asdict deep-copies every nested value first (a fifth of
        # the harness's CPU per sample), and JSON encoding needs no copy
        return json.dumps(vars(self), ensure_ascii=False, default=str)


@dataclass
class Metric:
    value: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> MetricDict:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}


def stable_hash(payload: Any) -> str:
    """sha256 over canonical JSON; used for cache keys, template hashes and fingerprints."""
    text = (
        payload
        if isinstance(payload, str)
        else json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_key(task: str, variant: str, sample_id: str) -> str:
    return f"{task}|{variant}|{sample_id}"
