"""OpenAI chat-completions through the official `openai` SDK, against OpenAI or any compatible URL
(vLLM server, llama.cpp server, Ollama, the loopback test server).

The SDK runs on its aiohttp transport (`openai[aiohttp]`, `DefaultAioHttpClient`) when that is
installed: on a 2-core machine the default httpx pool spends enough CPU per request to make a 32-way
run markedly slower than the server allows (README, Performance). The SDK's own retries are off
(`max_retries=0`): `ModelClient` retries every backend the same way, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from typing import Any

from ..types import ChatRequest, Completion
from .base import Backend, Retryable, add_secret, chat_kwargs, status_error

_LOCAL_KEY = "sk-no-key-needed"  # local servers accept any key; the SDK refuses none
_DEFAULT_URL = "https://api.openai.com/v1"
MAX_TOP_LOGPROBS = 20  # the most OpenAI's API (and vLLM's default) returns per token
_LETTER = re.compile(r"""^[\s"'`*(]*([A-Z])[\s"'`*).:,]*$""")  # one capital letter, spaces and quotes aside


class OpenAIBackend(Backend):
    kind = "openai"
    supports_logprobs = True

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        timeout: float = 120.0,
        concurrency: int = 32,
        api_key: str | None = None,
        **model_args: Any,
    ):
        super().__init__(model, **model_args)
        # a key given as --model-arg authenticates like OPENAI_API_KEY (a header), never goes into the body
        self._api_key = str(api_key) if api_key else os.environ.get("OPENAI_API_KEY") or _LOCAL_KEY
        if api_key:
            add_secret(str(api_key))
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._timeout = timeout
        self._max_connections = concurrency + 8
        self._client = None  # made on first use, inside the running event loop
        self._loop = None
        self._refuses_logprobs = False  # the server answered 400 to a request for log-probabilities
        self.context_window = int(model_args.get("context_window", 128_000))

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "base_url": self.base_url or _DEFAULT_URL}

    def environment(self) -> dict[str, Any]:
        import openai

        return {"openai": openai.__version__}

    def _sdk(self):
        """One AsyncOpenAI client per event loop (callers may `asyncio.run` more than once)."""
        import openai

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._loop = loop
            # the SDK's own Limits class (httpx or httpx2, whichever this SDK version is built on)
            limits = type(openai.DEFAULT_CONNECTION_LIMITS)(
                max_connections=self._max_connections, max_keepalive_connections=self._max_connections
            )
            try:
                http_client = openai.DefaultAioHttpClient(timeout=self._timeout, limits=limits)
            except (AttributeError, RuntimeError, ImportError):  # openai[aiohttp] not installed
                http_client = openai.DefaultAsyncHttpxClient(timeout=self._timeout, limits=limits)
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.base_url,
                max_retries=0,
                timeout=self._timeout,
                http_client=http_client,
            )
        return self._client

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return [await self._one(r) for r in requests]

    async def _one(self, request: ChatRequest) -> Completion:
        import openai

        kwargs = chat_kwargs(self.model, request, self.model_args)
        # asked only when wanted, and never over a --model-arg logprobs=... the user set
        asks = bool(request.logprobs) and not self._refuses_logprobs and "logprobs" not in self.model_args
        if asks:
            kwargs.update(logprobs=True, top_logprobs=min(request.logprobs, MAX_TOP_LOGPROBS))
        start = time.perf_counter()
        try:
            # The SDK's generic `post` (its documented way to call any endpoint) with the body as text:
            # it skips validating the request against the typed `create()` signature (about 0.3 ms of
            # CPU per call) and building pydantic models for a reply of which we read four fields.
            text = await self._sdk().post("/chat/completions", body=kwargs, cast_to=str)
            body = json.loads(text)
        except openai.APIStatusError as exc:
            if asks and exc.status_code == 400 and "logprob" in str(exc).lower():
                # a model that takes no log-probabilities (some providers' reasoning models): ask it
                # again without, and no more for this backend; the answer then simply has no confidence
                self._refuses_logprobs = True
                return await self._one(request)
            raise status_error(exc.status_code, exc.response.headers, str(exc)) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # a truncated or non-JSON body (the SDK hands it over as text, unchecked)
            raise Retryable(f"malformed response: {type(exc).__name__}") from None
        return _completion(body, time.perf_counter() - start)

    async def close(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.close()
        self._client = None


def _completion(body: Any, latency: float) -> Completion:
    """Text and token counts from a chat-completions body; a body without them is retried."""
    try:
        choices = body.get("choices")
        if not choices:
            raise Retryable("response has an empty choices list")
        text = choices[0]["message"].get("content") or ""
        usage = body.get("usage") or {}
        content = (choices[0].get("logprobs") or {}).get("content")
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=latency,
            letter_logprobs=letter_logprobs(content) if isinstance(content, list) else None,
        )
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise Retryable(f"malformed response: {type(exc).__name__}") from None


def letter_logprobs(content: list[Any]) -> list[dict[str, Any]]:
    """The one-capital-letter tokens of a reply's `logprobs.content` (OpenAI's chat format, which vLLM
    and llama.cpp's server share): where each is in the reply's text and the log-probabilities of the
    letters among its top alternatives, the token's own included, tokens that read as the same letter
    ("B", " B", "\"B") summed. Offsets are counted in the tokens' UTF-8 `bytes` when every token has
    them (a token may end inside a character), else in their text."""
    raw = [e.get("bytes") for e in content if isinstance(e, dict)]
    use_bytes = len(raw) == len(content) and all(isinstance(b, list) for b in raw)
    seen = b""
    offset = 0
    out: list[dict[str, Any]] = []
    for entry in content:
        token = str(entry.get("token") or "") if isinstance(entry, dict) else ""
        found = _LETTER.match(token)
        if found:
            at = (len(seen.decode("utf-8", errors="ignore")) if use_bytes else offset) + found.start(1)
            out.append({"at": at, "logprobs": _letters(entry)})
        if use_bytes:
            seen += bytes(entry["bytes"])
        offset += len(token)
    return out


def _letters(entry: dict[str, Any]) -> dict[str, float]:
    """Letter -> log-probability summed over the distinct alternative tokens that read as it."""
    tokens: dict[str, float] = {}
    for alt in [*(entry.get("top_logprobs") or []), entry]:
        token, value = alt.get("token"), alt.get("logprob")
        if isinstance(token, str) and isinstance(value, (int, float)) and math.isfinite(value):
            tokens.setdefault(token, float(value))
    by_letter: dict[str, list[float]] = {}
    for token, value in tokens.items():
        found = _LETTER.match(token)
        if found:
            by_letter.setdefault(found.group(1), []).append(value)
    return {k: _logsumexp(v) for k, v in sorted(by_letter.items())}


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))
