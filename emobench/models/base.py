"""The Backend contract: a model behind `generate`, optionally `loglikelihood`, and `info`.

Backends do not retry, cache or limit concurrency themselves: `emobench.client.ModelClient` does that
once for all of them. API backends raise `Retryable` for failures worth another try.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from typing import Any, ClassVar

from ..types import ChatRequest, Completion, GenParams, Message, stable_hash


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
    supports_logprobs: ClassVar[bool] = False  # can return top log-probabilities of generated tokens
    context_window: int | None = None  # prompt + completion tokens the model takes (None: unknown)
    base_url: str | None = None  # the server of an API backend (a sage or agent on `openai/` shares it)
    chat_template: str | None = None  # what a local backend formats chats with (None: the server's own)

    def __init__(self, model: str, **model_args: Any):
        self.model = model
        self.model_args = model_args
        for value in credential_values(model_args):
            add_secret(value)

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
        return {"backend": self.kind, "model": self.model, "args": public_args(self.model_args)}

    def environment(self) -> dict[str, Any]:
        """The software and hardware the numbers come from (library versions, CPU features, device,
        threads). It is recorded beside the manifest but is NOT part of the cache key or the manifest
        hash: the same model and settings on another machine are the same experiment, and a comparison
        of two runs warns, rather than refuses, when their environments differ (float results from a
        different build or instruction set can differ in the last digits, and a close call can flip)."""
        return {}

    def info(self) -> dict[str, Any]:
        return {
            **self.identity(),
            "loglikelihood": self.supports_loglikelihood,
            "context_window": self.context_window,
        }

    async def close(self) -> None:
        return None


def status_error(status: int, headers: Any, message: str) -> Exception:
    """An API backend's HTTP error: 429, 408 and 5xx are worth retrying (with Retry-After when given);
    other 4xx are final."""
    if status == 429 or status >= 500 or status == 408:
        retry_after = None
        raw = headers.get("retry-after") if headers is not None else None
        if raw:
            try:
                retry_after = float(raw)
            except ValueError:
                retry_after = None
        return Retryable(f"HTTP {status}", retry_after=retry_after)
    return RuntimeError(f"HTTP {status}: {message[:300]}")


def chat_kwargs(model: str, request: ChatRequest, model_args: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions arguments of a request (OpenAI's names, which litellm shares); extra
    `--model-arg`s are passed through, except emobench's own `context_window`."""
    p = request.params
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": list(request.messages),
        "temperature": p.temperature,
        "max_tokens": p.max_tokens,
    }
    if p.top_p is not None:
        kwargs["top_p"] = p.top_p
    if p.stop:
        kwargs["stop"] = list(p.stop)
    if p.seed is not None:
        kwargs["seed"] = p.seed  # ModelClient derived it per request, so each draw has its own
    kwargs.update({k: v for k, v in model_args.items() if k != "context_window"})
    return kwargs


def batch_key(request: ChatRequest) -> GenParams:
    """What requests must share to be generated in one batch: their parameters, except the seed, which
    is per request (each row of a batch samples with its own)."""
    return replace(request.params, seed=None)


def derive_seed(seed: int | None, request: ChatRequest) -> int:
    """A 31-bit seed for one request from the run seed and what is asked (messages, parameters, draw).

    It is a pure function of the request, hence of (sample, draw): the same whatever the batching, the
    concurrency or the order in which a run (or a resumed run) asks, and distinct for every draw of a
    voting protocol. 31 bits fit every API and engine that takes a seed."""
    payload = request.cache_payload()
    payload["params"]["seed"] = seed
    payload.pop("logprobs", None)  # asking for log-probabilities changes nothing that is sampled
    return int(stable_hash(payload)[:8], 16) & 0x7FFFFFFF


def sampling_seed(request: ChatRequest) -> int:
    """The seed a local backend samples `request` with: the one ModelClient derived from the run seed,
    else one derived from the request alone, so that a draw never depends on what was sampled before."""
    return request.params.seed if request.params.seed is not None else derive_seed(None, request)


# Model-arg names that hold credentials, matched exactly (case-insensitive, `-` read as `_`), also inside
# a mapping such as `extra_headers`. A name is listed only when its value can be nothing but a secret:
# settings whose names merely contain "token" or "key" (max_tokens, max_completion_tokens, top_k,
# cache_key) change the answers, so they stay in the cache key and the manifest in full.
CREDENTIAL_ARGS = frozenset(
    {
        "api_key",
        "apikey",
        "x_api_key",
        "key",
        "token",
        "access_token",
        "auth_token",
        "api_token",
        "bearer_token",
        "hf_token",
        "use_auth_token",
        "authorization",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "secret_key",
        "private_key",
        "azure_ad_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "vertex_credentials",
    }
)
REDACTED = "<redacted>"


def is_credential(name: str) -> bool:
    return name.lower().replace("-", "_") in CREDENTIAL_ARGS


def public_args(args: dict[str, Any]) -> dict[str, Any]:
    """`args` with the values of credential names replaced, recursively, sorted for a stable hash."""
    return {
        k: REDACTED if is_credential(k) else public_args(v) if isinstance(v, dict) else v
        for k, v in sorted(args.items())
    }


def credential_values(args: dict[str, Any]) -> list[str]:
    values = []
    for k, v in args.items():
        if isinstance(v, dict):
            values += credential_values(v)
        elif is_credential(k) and isinstance(v, str):
            values.append(v)
    return values


# Environment variable names that look like credentials. This is deliberately broad (a substring
# match): it only picks values to scrub from error texts, never what goes into a cache key.
_SECRET_ENV = re.compile(r"(key|token|secret|password|authorization)", re.IGNORECASE)
_PASSED_SECRETS: set[str] = set()  # credentials given as --model-arg (api_key=...), scrubbed the same way


def add_secret(value: str) -> None:
    """Scrub `value` (a credential given as a model arg) from every text `redact` cleans."""
    if len(value) >= 8:
        _PASSED_SECRETS.add(value)


def secret_values() -> list[str]:
    """Values of environment variables that look like credentials, and of credential model args, to
    scrub from any text we write."""
    env = [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]
    return env + sorted(_PASSED_SECRETS)


def redact(text: str) -> str:
    for value in secret_values():
        if value in text:
            text = text.replace(value, REDACTED)
    return text
