"""vLLM's offline engine in-process (`--model vllm/<hub id or path>`), GPU only (extra: vllm).

Same request interface as `hf/`: concurrent `generate` calls are collected (MicroBatcher) into one
`LLM.chat` call, which vLLM schedules with continuous batching; prefix caching is on, so the shared
system prompt and multiple-choice stems are computed once. `--model-arg tensor_parallel_size=N` splits
the model over N GPUs. Without a CUDA GPU the backend refuses with a one-line reason instead of
letting vLLM fail deep inside its start-up.

`identity()` holds every `LLM(...)` argument that changes outputs (quantization, kv_cache_dtype,
max_model_len, enforce_eager...; see `output_args`); where the engine runs (tensor parallelism, memory
share) and the vLLM/torch versions and GPU are `environment()`. Sampled requests use their own
per-request seed (`SamplingParams(seed=...)`), so batching never changes a draw.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import ConfigError
from ..types import ChatRequest, Completion, Message, stable_hash
from .base import Backend, batch_key, public_args, sampling_seed
from .local import MicroBatcher, read_template

# LLM(...) arguments that say where and how the engine runs, not what it computes
PLACEMENT_ARGS = frozenset(
    {
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "gpu_memory_utilization",
        "swap_space",
        "cpu_offload_gb",
        "max_num_seqs",
        "disable_log_stats",
    }
)


def output_args(engine_args: dict[str, Any]) -> dict[str, Any]:
    """The `LLM(...)` arguments that change outputs, credentials redacted: all but the placement ones."""
    return public_args({k: v for k, v in engine_args.items() if k not in PLACEMENT_ARGS})


def require_gpu() -> None:
    try:
        import torch
    except ImportError:
        raise ConfigError("vllm models need a CUDA GPU and vllm: pip install 'emobench[vllm]'") from None
    if not torch.cuda.is_available():
        raise ConfigError(
            "vllm models need a CUDA GPU and none was found (torch.cuda.is_available() is False); "
            "on a CPU use --model hf/<model> or llamacpp/<file.gguf>"
        )


class VLLMBackend(Backend):
    kind = "vllm"
    supports_loglikelihood = True

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        chat_template: str | None = None,
        revision: str | None = None,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.85,
        batch_size: int = 256,
        **model_args: Any,
    ):
        super().__init__(model, **model_args)
        require_gpu()
        try:
            from vllm import LLM
        except ImportError:
            raise ConfigError("vllm models need vllm: pip install 'emobench[vllm]'") from None
        self.engine_args = {
            "tensor_parallel_size": int(tensor_parallel_size),
            "dtype": dtype,
            "revision": revision,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": float(gpu_memory_utilization),
            "enable_prefix_caching": True,
            **model_args,
        }
        self.llm = LLM(model=model, **self.engine_args)
        self.tokenizer = self.llm.get_tokenizer()
        self.chat_template = read_template(chat_template) or getattr(self.tokenizer, "chat_template", None)
        self.template_hash = stable_hash(self.chat_template or "")[:16]
        config = self.llm.llm_engine.model_config
        self.context_window = int(config.max_model_len)
        self.dtype = str(config.dtype).replace("torch.", "")
        self.revision = revision or getattr(config, "revision", None) or "default"
        self.batch_size = int(batch_size)
        self._batcher = MicroBatcher(self._generate_batch, self.batch_size, key=batch_key)
        self._lock = asyncio.Lock()

    def identity(self) -> dict[str, Any]:
        # the resolved revision, dtype and context window, then every other argument as given
        return {
            "backend": self.kind,
            "model": self.model,
            **output_args(self.engine_args),
            "revision": self.revision,
            "dtype": self.dtype,
            "max_model_len": self.context_window,
            "chat_template_hash": self.template_hash,
        }

    def environment(self) -> dict[str, Any]:
        import torch
        import vllm

        placement = {k: v for k, v in self.engine_args.items() if k in PLACEMENT_ARGS}
        return {
            "vllm": vllm.__version__,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0),
            "gpus": torch.cuda.device_count(),
            "batch_size": self.batch_size,
            **placement,
        }

    def info(self) -> dict[str, Any]:
        import torch

        return {
            **super().info(),
            "device": torch.cuda.get_device_name(0),
            "chat_template": self.chat_template,
        }

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def format_prompt(self, messages: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages), chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return await self._batcher.submit(list(requests))

    def _generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        from vllm import SamplingParams

        p = requests[0].params
        params = [
            SamplingParams(
                temperature=p.temperature,
                top_p=p.top_p or 1.0,
                max_tokens=p.max_tokens,
                stop=list(p.stop or []) or None,
                seed=sampling_seed(r) if p.temperature else None,
            )
            for r in requests
        ]
        start = time.perf_counter()
        outputs = self.llm.chat(
            [list(r.messages) for r in requests], params, chat_template=self.chat_template, use_tqdm=False
        )
        elapsed = time.perf_counter() - start
        return [
            Completion(
                text=o.outputs[0].text,
                prompt_tokens=len(o.prompt_token_ids or []),
                completion_tokens=len(o.outputs[0].token_ids),
                latency_s=elapsed,
            )
            for o in outputs
        ]

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
