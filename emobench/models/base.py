"""The Backend contract: a model behind `generate`, optionally `loglikelihood`, and `info`.

Backends do not retry, cache or limit concurrency themselves: `emobench.client.ModelClient` does that
once for all of them. API backends raise `Retryable` for failures worth another try.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, ClassVar

from ..types import ChatRequest, Completion, Message


class Retryable(Exception):
    """A transient failure (429, 5xx, timeout, connection reset, malformed body).

    `retry_after` carries the server's Retry-After header in seconds, honoured by the retry policy.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Unsupported(Exception):
    """The backend cannot do this (e.g. log-likelihood over a chat API)."""


class Backend:
    kind: ClassVar[str] = "base"
    supports_loglikelihood: ClassVar[bool] = False
    is_baseline: ClassVar[bool] = False
    context_window: int | None = None

    def __init__(self, model: str, **model_args: Any):
        self.model = model
        self.model_args = model_args

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        raise NotImplementedError

    async def loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        """Sum of log-probabilities of each continuation after the chat-formatted prompt."""
        raise Unsupported(f"{self.kind} backends do not expose log-likelihoods")

    def count_tokens(self, text: str) -> int:
        """Tokens in `text`. API backends use a tiktoken-style estimate (about 4 characters a token)."""
        return math.ceil(len(text) / 4)

    def identity(self) -> dict[str, Any]:
        """What makes this model's answers what they are: part of the cache key and the manifest.
        Never includes secrets."""
        return {"backend": self.kind, "model": self.model, "args": _public(self.model_args)}

    def info(self) -> dict[str, Any]:
        return {**self.identity(), "loglikelihood": self.supports_loglikelihood,
                "context_window": self.context_window}

    async def close(self) -> None:
        return None


def chat_kwargs(model: str, request: ChatRequest, model_args: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions arguments of a request (OpenAI's names, which litellm shares); extra
    `--model-arg`s are passed through, except emobench's own `context_window`."""
    p = request.params
    kwargs: dict[str, Any] = {"model": model, "messages": list(request.messages),
                              "temperature": p.temperature, "max_tokens": p.max_tokens}
    if p.top_p is not None:
        kwargs["top_p"] = p.top_p
    if p.stop:
        kwargs["stop"] = list(p.stop)
    if p.seed is not None:
        kwargs["seed"] = p.seed + request.draw  # each draw of a voting protocol is a distinct sample
    kwargs.update({k: v for k, v in model_args.items() if k != "context_window"})
    return kwargs


_SECRET_KEY = re.compile(r"(key|token|secret|password|authorization)", re.IGNORECASE)


def _public(args: dict[str, Any]) -> dict[str, Any]:
    return {k: ("<redacted>" if _SECRET_KEY.search(k) else v) for k, v in sorted(args.items())}


def secret_values() -> list[str]:
    """Values of environment variables that look like credentials, to scrub from any text we write."""
    return [v for k, v in os.environ.items() if _SECRET_KEY.search(k) and len(v) >= 8]


def redact(text: str) -> str:
    for value in secret_values():
        if value in text:
            text = text.replace(value, "<redacted>")
    return text
