"""Any lm-evaluation-harness model through emobench's tasks, variants and run log
(`--model lmeval/<lm-eval model name>`, every `--model-arg` passed through as lm-eval's model_args).

    emobench run -t emobench_ea -m lmeval/hf --model-arg pretrained=HuggingFaceTB/SmolLM2-135M-Instruct

The chat is formatted with the lm-eval model's own `apply_chat_template` (the same path as
`lm_eval --apply_chat_template`); models without one get a plain role-prefixed transcript. Concurrent
`generate` calls are collected into one `generate_until` call, so lm-eval batches them its own way.
lm-eval is imported only here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import ConfigError
from ..types import ChatRequest, Completion, Message, stable_hash
from .base import Backend, batch_key
from .local import MicroBatcher, fallback_prompt, truncate_at_stop

#  model_args that configure the lm-eval wrapper itself rather than the model
WRAPPER_ARGS = ("batch_size", "max_batch_size", "device")


class LMEvalBackend(Backend):
    kind = "lmeval"
    supports_loglikelihood = True

    def __init__(self, model: str, **model_args: Any):
        super().__init__(model, **model_args)
        try:
            from lm_eval.api.registry import get_model
        except ImportError:
            raise ConfigError(
                "lmeval models need lm-evaluation-harness: pip install 'emobench[lmeval]'"
            ) from None
        try:
            cls = get_model(model)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"lmeval: unknown lm-eval model {model!r} ({exc})") from None
        extra = {k: model_args[k] for k in WRAPPER_ARGS if k in model_args}
        args = {k: v for k, v in model_args.items() if k not in WRAPPER_ARGS}
        if model == "hf" and "device" not in extra:
            import torch

            extra["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        self.lm = cls.create_from_arg_obj(args, extra)
        tokenizer = getattr(self.lm, "tokenizer", None)
        self.chat_template = getattr(tokenizer, "chat_template", None)
        self.template_hash = stable_hash(self.chat_template or "")[:16]
        self.context_window = getattr(self.lm, "max_length", None)
        self._batcher = MicroBatcher(
            self._generate_batch, int(model_args.get("max_batch_size") or 64), key=batch_key
        )
        self._lock = asyncio.Lock()

    def identity(self) -> dict[str, Any]:
        from lm_eval import __version__ as lm_eval_version

        return {**super().identity(), "lm_eval": lm_eval_version, "chat_template_hash": self.template_hash}

    def count_tokens(self, text: str) -> int:
        encode = getattr(self.lm, "tok_encode", None)
        return len(encode(text)) if encode else super().count_tokens(text)

    def format_prompt(self, messages: list[Message]) -> str:
        if self.chat_template is None:
            return fallback_prompt(messages)
        return self.lm.apply_chat_template(list(messages), add_generation_prompt=True)

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return await self._batcher.submit(list(requests))

    def _generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        from lm_eval.api.instance import Instance

        p = requests[0].params
        kwargs: dict[str, Any] = {
            "until": list(p.stop or []),
            "max_gen_toks": p.max_tokens,
            "do_sample": p.temperature > 0,
            "temperature": p.temperature,
        }
        if p.top_p is not None:
            kwargs["top_p"] = p.top_p
        prompts = [self.format_prompt(list(r.messages)) for r in requests]
        instances = [
            Instance("generate_until", {}, (prompt, dict(kwargs)), i) for i, prompt in enumerate(prompts)
        ]
        start = time.perf_counter()
        texts = self.lm.generate_until(instances, disable_tqdm=True)
        elapsed = time.perf_counter() - start
        return [
            Completion(
                text=truncate_at_stop(text, p.stop),
                prompt_tokens=self.count_tokens(prompt),
                completion_tokens=self.count_tokens(text),
                latency_s=elapsed,
            )
            for prompt, text in zip(prompts, texts, strict=True)
        ]

    async def loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        async with self._lock:
            return await asyncio.to_thread(self._loglikelihood, messages, continuations)

    def _loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        from lm_eval.api.instance import Instance

        prompt = self.format_prompt(messages)
        instances = [Instance("loglikelihood", {}, (prompt, cont), i) for i, cont in enumerate(continuations)]
        return [float(ll) for ll, _ in self.lm.loglikelihood(instances, disable_tqdm=True)]
