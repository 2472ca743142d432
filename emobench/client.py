"""ModelClient: the one place where model calls are cached, retried, rate-limited and metered.

Variants talk to a ModelClient, never to a backend directly, so every variant gets the same
guarantees: a request already answered (in this run or any earlier one) is served from the cache, at
most `concurrency` calls are in flight, transient failures are retried with exponential backoff and
jitter (Retry-After honoured), and each call's tokens, latency and price are added to the sample's Usage.

The run's `seed` becomes a per-request seed (`derive_seed`: run seed, messages, parameters, draw) in the
request's GenParams: it is sent to the model, used by local backends to sample, and part of the cache
key, so another `--seed` gives new draws and the same seed the same ones, whatever the scheduling.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from .cache import ResponseCache, request_key
from .errors import ModelCallError
from .models import make_backend
from .models.base import Backend, Retryable, Unsupported, derive_seed, redact
from .types import ChatRequest, Completion, GenParams, Message, Usage

MAX_RETRY_AFTER_S = 60.0


@dataclass
class CallStats:
    """Run-wide counters, reported in results.json."""

    retries: int = 0
    failed_calls: int = 0
    retry_after_waits: list[float] = field(default_factory=list)


class ModelClient:
    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache | None = None,
        concurrency: int = 8,
        max_retries: int = 6,
        timeout: float = 120.0,
        system_prompt: str | None = None,
        gen_overrides: dict[str, Any] | None = None,
        backoff_initial: float = 0.5,
        seed: int | None = None,
    ):
        self.backend = backend
        self.cache = cache
        self.semaphore = asyncio.Semaphore(max(1, concurrency))
        self.max_retries = max_retries
        self.timeout = timeout
        self.system_prompt = system_prompt
        self.gen_overrides = {k: v for k, v in (gen_overrides or {}).items() if v is not None}
        self.backoff_initial = backoff_initial
        self.seed = seed
        self.stats = CallStats()
        self.identity = backend.identity()
        self.price = model_price(backend.kind, backend.model)

    @property
    def supports_loglikelihood(self) -> bool:
        return self.backend.supports_loglikelihood

    @property
    def supports_logprobs(self) -> bool:
        """Whether `chat(..., logprobs=k)` can bring back the top log-probabilities of the reply's tokens."""
        return self.backend.supports_logprobs

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    @property
    def context_window(self) -> int | None:
        return self.backend.context_window

    def _messages(self, messages: list[Message]) -> tuple[Message, ...]:
        if not self.system_prompt:
            return tuple(messages)
        if messages and messages[0]["role"] == "system":
            head = {"role": "system", "content": self.system_prompt + "\n\n" + messages[0]["content"]}
            return (head, *messages[1:])
        return ({"role": "system", "content": self.system_prompt}, *messages)

    def request(
        self, messages: list[Message], params: GenParams, draw: int = 0, logprobs: int = 0
    ) -> ChatRequest:
        """The exact request sent (and cached): system prompt, overrides and the per-request seed applied;
        `logprobs` only where the backend can return them."""
        logprobs = logprobs if self.supports_logprobs else 0
        request = ChatRequest(self._messages(messages), params.merged(**self.gen_overrides), draw, logprobs)
        if self.seed is None:
            return request
        return replace(request, params=replace(request.params, seed=derive_seed(self.seed, request)))

    async def chat(
        self, messages: list[Message], params: GenParams, usage: Usage, draw: int = 0, logprobs: int = 0
    ) -> Completion:
        request = self.request(messages, params, draw, logprobs)
        key = request_key(self.identity, request.cache_payload())
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            usage.cached_calls += 1
            return hit
        completion = await self._with_retries(lambda: self.backend.generate([request]))
        completion = completion[0]
        if self.cache is not None:
            self.cache.put(key, completion)
        self._meter(usage, completion)
        return completion

    async def loglikelihood(
        self, messages: list[Message], continuations: list[str], usage: Usage
    ) -> list[float]:
        if not self.backend.supports_loglikelihood:
            raise Unsupported(f"{self.backend.kind} does not support log-likelihoods")
        msgs = self._messages(messages)
        key = request_key(self.identity, {"loglikelihood": [list(msgs), continuations]})
        if self.cache is not None and (hit := self.cache.get_ll(key)) is not None:
            usage.cached_calls += 1
            return hit
        start = time.perf_counter()
        values = await self._with_retries(lambda: self.backend.loglikelihood(list(msgs), continuations))
        if self.cache is not None:
            self.cache.put_ll(key, values)
        usage.calls += 1
        usage.seconds += time.perf_counter() - start
        return values

    def _meter(self, usage: Usage, c: Completion) -> None:
        usage.calls += 1
        usage.prompt_tokens += c.prompt_tokens
        usage.completion_tokens += c.completion_tokens
        usage.seconds += c.latency_s
        if self.price is not None:
            usage.cost_usd = (
                (usage.cost_usd or 0.0)
                + c.prompt_tokens * self.price[0]
                + c.completion_tokens * self.price[1]
            )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            wait = min(max(exc.retry_after, 0.0), MAX_RETRY_AFTER_S)
            self.stats.retry_after_waits.append(wait)
            return wait
        return wait_exponential_jitter(
            multiplier=self.backoff_initial, max=30.0, jitter=self.backoff_initial
        )(state)

    async def _with_retries(self, call):
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type((Retryable, asyncio.TimeoutError)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats.retries += 1
                    async with self.semaphore:
                        return await asyncio.wait_for(call(), timeout=self.timeout + 5.0)
        except (Retryable, asyncio.TimeoutError) as exc:
            self.stats.failed_calls += 1
            raise ModelCallError(
                redact(f"gave up after {self.max_retries + 1} attempts: {type(exc).__name__}: {exc}")
            ) from None
        except Unsupported:
            raise
        except Exception as exc:  # a final, non-retryable error (4xx, backend crash)
            self.stats.failed_calls += 1
            raise ModelCallError(redact(f"{type(exc).__name__}: {exc}")) from None


def client_for(spec: str | None, client: ModelClient) -> ModelClient:
    """A ModelClient for another model spec (a sage, an agent), sharing the run's cache and retry
    settings, and the run's server for an `openai/` spec; the run's own client when `spec` is empty or
    'same'."""
    if not spec or spec == "same":
        return client
    base_url = client.backend.base_url if str(spec).startswith("openai/") else None
    backend = make_backend(str(spec), base_url=base_url, timeout=client.timeout)
    return ModelClient(
        backend,
        client.cache,
        max_retries=client.max_retries,
        timeout=client.timeout,
        backoff_initial=client.backoff_initial,
    )


@lru_cache(maxsize=64)
def model_price(kind: str, model: str) -> tuple[float, float] | None:
    """(input, output) dollars per token from litellm's bundled model cost map, read as a JSON file so
    that litellm itself is not imported; None when the model is not listed."""
    if kind not in ("openai", "litellm"):
        return None
    table = _cost_map()
    entry = table.get(model) or table.get(model.split("/", 1)[-1])
    if not entry:
        return None
    try:
        return float(entry["input_cost_per_token"]), float(entry["output_cost_per_token"])
    except (KeyError, TypeError, ValueError):
        return None


@lru_cache(maxsize=1)
def _cost_map() -> dict[str, Any]:
    spec = find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(list(spec.submodule_search_locations)[0]) / "model_prices_and_context_window_backup.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
