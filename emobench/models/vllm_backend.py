"""vLLM's offline engine in-process (`--model vllm/<hub id or path>`), GPU only (extra: vllm).

Same request interface as `hf/`: concurrent `generate` calls are collected (MicroBatcher) into one
`LLM.chat` call, which vLLM schedules with continuous batching; prefix caching is on, so the shared
system prompt and multiple-choice stems are computed once. `--model-arg tensor_parallel_size=N` splits
the model over N GPUs. Without a CUDA GPU the backend refuses with a one-line reason instead of
letting vLLM fail deep inside its start-up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import ConfigError
from ..types import ChatRequest, Completion, Message, stable_hash
from .base import Backend
from .hf import MicroBatcher, read_template


def require_gpu() -> None:
    try:
        import torch
    except ImportError:
        raise ConfigError("vllm models need a CUDA GPU and vllm: pip install 'emobench[vllm]'") from None
    if not torch.cuda.is_available():
        raise ConfigError("vllm models need a CUDA GPU and none was found (torch.cuda.is_available() is False); "
                          "on a CPU use --model hf/<model> or llamacpp/<file.gguf>")


class VLLMBackend(Backend):
    kind = "vllm"
    supports_loglikelihood = True

    def __init__(self, model: str, tensor_parallel_size: int = 1, dtype: str = "auto",
                 chat_template: str | None = None, revision: str | None = None, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.85, batch_size: int = 256, seed: int = 0, **model_args: Any):
        super().__init__(model, tensor_parallel_size=tensor_parallel_size, dtype=dtype, chat_template=chat_template,
                         revision=revision, max_model_len=max_model_len, **model_args)
        require_gpu()
        try:
            from vllm import LLM
        except ImportError:
            raise ConfigError("vllm models need vllm: pip install 'emobench[vllm]'") from None
        self.llm = LLM(model=model, tensor_parallel_size=int(tensor_parallel_size), dtype=dtype, revision=revision,
                       max_model_len=max_model_len, gpu_memory_utilization=float(gpu_memory_utilization),
                       enable_prefix_caching=True, seed=int(seed), **model_args)
        self.tokenizer = self.llm.get_tokenizer()
        self.chat_template = read_template(chat_template) or getattr(self.tokenizer, "chat_template", None)
        self.template_hash = stable_hash(self.chat_template or "")[:16]
        config = self.llm.llm_engine.model_config
        self.context_window = int(config.max_model_len)
        self.dtype = str(config.dtype).replace("torch.", "")
        self.revision = revision or getattr(config, "revision", None) or "default"
        self._batcher = MicroBatcher(self._generate_batch, int(batch_size), key=lambda r: r.params)
        self._lock = asyncio.Lock()

    def identity(self) -> dict[str, Any]:
        import vllm

        return {"backend": self.kind, "model": self.model, "revision": self.revision, "dtype": self.dtype,
                "chat_template_hash": self.template_hash, "vllm": vllm.__version__}

    def info(self) -> dict[str, Any]:
        import torch

        return {**super().info(), "device": torch.cuda.get_device_name(0), "chat_template": self.chat_template}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def format_prompt(self, messages: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), chat_template=self.chat_template, tokenize=False,
                                                  add_generation_prompt=True)

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return await self._batcher.submit(list(requests))

    def _generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        from vllm import SamplingParams

        p = requests[0].params
        params = [SamplingParams(temperature=p.temperature, top_p=p.top_p or 1.0, max_tokens=p.max_tokens,
                                 stop=list(p.stop or []) or None,
                                 seed=None if not p.temperature else (p.seed or 0) + r.draw) for r in requests]
        start = time.perf_counter()
        outputs = self.llm.chat([list(r.messages) for r in requests], params, chat_template=self.chat_template,
                                use_tqdm=False)
        elapsed = time.perf_counter() - start
        return [Completion(text=o.outputs[0].text, prompt_tokens=len(o.prompt_token_ids or []),
                           completion_tokens=len(o.outputs[0].token_ids), latency_s=elapsed) for o in outputs]

    async def loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        async with self._lock:
            return await asyncio.to_thread(self._loglikelihood, messages, continuations)

    def _loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        """Prompt log-probabilities of prompt + option; prefix caching shares the prompt's KV blocks."""
        from vllm import SamplingParams

        prefix = self.tokenizer.encode(self.format_prompt(messages), add_special_tokens=False)
        prompts = [prefix + self.tokenizer.encode(c, add_special_tokens=False) for c in continuations]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
        scores = []
        for ids, out in zip(prompts, outputs, strict=True):
            total = 0.0
            for pos in range(len(prefix), len(ids)):
                total += out.prompt_logprobs[pos][ids[pos]].logprob
            scores.append(total)
        return scores
