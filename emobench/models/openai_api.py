"""OpenAI chat-completions through the official `openai` SDK, against OpenAI or any compatible URL
(vLLM server, llama.cpp server, Ollama, the loopback test server).

The SDK's own retries are switched off (`max_retries=0`): `ModelClient` retries every backend the same
way, honouring Retry-After.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..types import ChatRequest, Completion
from .base import Backend, Retryable

_LOCAL_KEY = "sk-no-key-needed"  # local servers accept any key; the SDK refuses none


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 120.0,
                 concurrency: int = 32, **model_args: Any):
        super().__init__(model, **model_args)
        import httpx
        import openai

        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = os.environ.get("OPENAI_API_KEY") or _LOCAL_KEY
        limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
        self._openai = openai
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=self.base_url, max_retries=0, timeout=timeout,
            http_client=httpx.AsyncClient(limits=limits, timeout=timeout))
        self.context_window = int(model_args.get("context_window", 128_000))

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "base_url": self.base_url or "https://api.openai.com/v1"}

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return [await self._one(r) for r in requests]

    async def _one(self, request: ChatRequest) -> Completion:
        p = request.params
        kwargs: dict[str, Any] = {"model": self.model, "messages": list(request.messages),
                                  "temperature": p.temperature, "max_tokens": p.max_tokens}
        if p.top_p is not None:
            kwargs["top_p"] = p.top_p
        if p.stop:
            kwargs["stop"] = list(p.stop)
        if p.seed is not None:
            kwargs["seed"] = p.seed + request.draw
        extra = {k: v for k, v in self.model_args.items() if k not in ("context_window",)}
        kwargs.update(extra)
        start = time.perf_counter()
        try:
            resp = await self._client.chat.completions.create(**kwargs)
        except self._openai.APIStatusError as exc:
            raise _status_error(exc.status_code, exc.response.headers, str(exc)) from None
        except (self._openai.APITimeoutError, self._openai.APIConnectionError) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from None
        except self._openai.APIResponseValidationError as exc:
            raise Retryable(f"malformed response: {exc}") from None
        except ValueError as exc:  # truncated JSON body
            raise Retryable(f"malformed response body: {exc}") from None
        if not getattr(resp, "choices", None):
            raise Retryable("response has an empty choices list")
        text = resp.choices[0].message.content or ""
        usage = resp.usage
        return Completion(text=text, prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                          latency_s=time.perf_counter() - start)

    async def close(self) -> None:
        await self._client.close()


def _status_error(status: int, headers: Any, message: str) -> Exception:
    """429 and 5xx are worth retrying (with Retry-After when given); other 4xx are final."""
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
