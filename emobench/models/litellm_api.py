"""Every other provider through `litellm` (`--model litellm/<provider>/<model>`).

litellm's own retries are off; `ModelClient` retries. `--base-url` is passed as `api_base`, which is how
the tests point it at the loopback server. The per-request seed is sent to providers that take one
(litellm's own table of supported parameters); litellm would refuse the call for the others.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..types import ChatRequest, Completion
from .base import Backend, Retryable, chat_kwargs, status_error


class LiteLLMBackend(Backend):
    kind = "litellm"

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 120.0, **model_args: Any):
        super().__init__(model, **model_args)
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of the price map
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        self._litellm = litellm
        self.base_url = base_url
        self.timeout = timeout
        self.context_window = int(model_args.get("context_window", 128_000))
        self.sends_seed = _takes_seed(litellm, model)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "base_url": self.base_url}

    def environment(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"litellm": version("litellm")}

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return [await self._one(r) for r in requests]

    async def _one(self, request: ChatRequest) -> Completion:
        kwargs = chat_kwargs(self.model, request, {"timeout": self.timeout, "num_retries": 0})
        if not self.sends_seed:
            kwargs.pop("seed", None)
        if self.base_url:
            kwargs["api_base"] = self.base_url
            kwargs["api_key"] = os.environ.get("OPENAI_API_KEY") or "sk-no-key-needed"
        kwargs.update({k: v for k, v in self.model_args.items() if k != "context_window"})
        start = time.perf_counter()
        try:
            resp = await self._litellm.acompletion(**kwargs)
        except Exception as exc:  # litellm maps every provider error onto its own classes
            status = getattr(exc, "status_code", None)
            headers = getattr(exc, "litellm_response_headers", None) or getattr(exc, "headers", None)
            if isinstance(status, int):
                raise status_error(status, headers, str(exc)) from None
            if isinstance(exc, (self._litellm.Timeout, self._litellm.APIConnectionError)):
                raise Retryable(f"{type(exc).__name__}") from None
            raise Retryable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if not getattr(resp, "choices", None):
            raise Retryable("response has an empty choices list")
        usage = getattr(resp, "usage", None)
        return Completion(
            text=resp.choices[0].message.content or "",
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            latency_s=time.perf_counter() - start,
        )


def _takes_seed(litellm: Any, model: str) -> bool:
    """Whether litellm passes `seed` on for this provider/model (it raises for providers without one)."""
    try:
        return "seed" in (litellm.get_supported_openai_params(model=model) or [])
    except Exception:  # a provider litellm cannot classify: it would not know a seed either
        return False
