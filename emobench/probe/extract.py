"""Hidden states of every battery item, pooled per layer and cached in the run directory.

The model is the `hf` backend's (`emobench.models.hf`: model resolution, the embedded GGUF de-quantised
by transformers, fp32 on CPU and bf16 on a GPU, chat template, identity), run through its base model
only (the LM head's logits would be a fifth of the compute and are not needed) with
`output_hidden_states`: index 0 is the embedding output, index l the output of block l (the last one
after the final norm, as transformers returns it).

Two poolings are kept for every layer, so that any later --layers / --pool choice reads the cache:
- `mean`: the mean over the item's own tokens (special tokens and, with --chat-template, the
  template's own tokens are left out);
- `last`: the state at the input's last token (with a chat template, the end of the generation prompt).

Batches are right-padded: every item's positions start at 0 as when it is alone, so a batch gives the
states of one-at-a-time passes (checked in the tests). Each finished batch is written before the next
starts, one file per item named by its key (model identity + input format + text): a killed probe
resumes where it stopped, and other probe settings, or another battery sharing items, extract nothing.
`models.json` beside the files remembers the identity each model request (spec and arguments) loaded;
when every item of a request is cached, the states are read without loading the model at all (its
load alone takes longer than the probes). Like the response cache for API models, this trusts that a
spec keeps naming the same weights: pin `--model-arg revision=` for a hub model that may change.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..models.base import Backend, public_args
from ..runstore import RunDirError, atomic_write
from ..types import stable_hash

POOLS = ("mean", "last")
FORMAT_VERSION = 1  # bump when what a cached file holds changes
MODELS_FILE = "models.json"
HIDDEN_BUDGET = 512 * 2**20  # bytes of hidden states per forward pass
MAX_BATCH = 64


@dataclass(frozen=True)
class HiddenStates:
    """pool -> [n_items, n_layers + 1, hidden] float32, plus how they were obtained."""

    states: dict[str, np.ndarray]
    model: dict[str, Any]  # the backend's identity (goes into the manifest)
    environment: dict[str, Any]  # device, dtype, library versions (not part of the identity)
    extracted: int  # items run through the model by this call
    cached: int  # items read from the cache
    seconds: float  # wall time of the forward passes

    @property
    def layers(self) -> int:
        return next(iter(self.states.values())).shape[1]


def load_model(spec: str | None, model_args: dict[str, Any]) -> Backend:
    """The hf backend for `spec` (`hf/<hub id or path>`; the default and `smollm2` mean the embedded
    SmolLM2-135M). Other backends cannot give hidden states."""
    from ..models import make_backend

    spec = spec or "hf/smollm2"
    if spec in ("smollm2", "embedded", "default"):
        spec = "hf/smollm2"
    if not spec.startswith("hf/"):
        raise ConfigError(
            f"--model {spec!r}: probing reads hidden states, which only in-process "
            "transformers models give: use --model hf/<hub id or local path> (default hf/smollm2)"
        )
    return make_backend(spec, model_args)


def item_key(identity: dict[str, Any], chat_template: bool, text: str) -> str:
    return stable_hash(
        {"model": identity, "chat_template": chat_template, "text": text, "version": FORMAT_VERSION}
    )[:32]


def _save(path: Path, array: np.ndarray) -> None:
    """np.save through a temporary file and a rename: a kill never leaves half an item."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    except OSError as exc:
        raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from None


def _load(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (OSError, ValueError):  # absent, or damaged by something other than a kill: extract again
        return None


class _Encoder:
    """Token ids of an item and which of them are the item's own text (for mean pooling)."""

    def __init__(self, backend: Any, chat_template: bool):
        self.backend, self.tokenizer, self.chat_template = backend, backend.tokenizer, chat_template
        if chat_template and not backend.chat_template:
            raise ConfigError(
                f"--chat-template: {backend.model} has no chat template (give one with "
                "--model-arg chat_template=FILE)"
            )

    def __call__(self, text: str) -> tuple[list[int], list[bool]]:
        """A token is the item's own when its characters overlap the item's text (special tokens have an
        empty span); with no such token (a tokenizer without offsets), every token counts."""
        prompt = (
            self.backend.format_prompt([{"role": "user", "content": text}]) if self.chat_template else text
        )
        start, end = prompt.rfind(text), prompt.rfind(text) + len(text)
        enc = self.tokenizer(
            prompt,
            add_special_tokens=not self.chat_template,
            return_offsets_mapping=True,
            truncation=bool(self.backend.context_window),
            max_length=self.backend.context_window,
        )
        own = [a < b and b > start and a < end for a, b in enc["offset_mapping"]]
        return list(enc["input_ids"]), own if any(own) else [True] * len(own)


def _forward(backend: Any, batch: list[tuple[list[int], list[bool]]]) -> np.ndarray:
    """[batch, 2 pools, n_layers + 1, hidden] float32 for right-padded inputs."""
    torch = backend.torch
    width = max(len(ids) for ids, _ in batch)
    pad = backend.tokenizer.pad_token_id or 0
    device = backend.hf_model.device
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch], device=device)
    attention = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch], device=device)
    own = torch.tensor([o + [False] * (width - len(o)) for _, o in batch], dtype=torch.float32, device=device)
    weights = own / own.sum(dim=1, keepdim=True)
    last = attention.sum(dim=1) - 1
    rows = torch.arange(len(batch), device=device)
    with torch.inference_mode():
        hidden = backend.hf_model.base_model(
            input_ids=ids, attention_mask=attention, output_hidden_states=True
        ).hidden_states
        pooled = [
            torch.stack([torch.einsum("bth,bt->bh", h.float(), weights), h[rows, last].float()], dim=1)
            for h in hidden
        ]  # per layer: [batch, 2, hidden]
    return torch.stack(pooled, dim=2).cpu().numpy()


def batch_size_for(backend: Any, longest: int) -> int:
    """Items per forward pass: as many as keep the batch's hidden states (every layer, kept by
    `output_hidden_states`) within HIDDEN_BUDGET, at most MAX_BATCH. Larger batches are much faster on a
    CPU: SmolLM2 on 2 cores extracts 64 items in 45 s at 8 a batch, in 18 s at 64."""
    config = backend.hf_model.config
    layers = int(getattr(config, "num_hidden_layers", 32)) + 1
    hidden = int(getattr(config, "hidden_size", 4096))
    return max(1, min(MAX_BATCH, HIDDEN_BUDGET // (4 * layers * hidden * max(1, longest))))


def extract(
    backend: Any,
    texts: Sequence[str],
    cache_dir: Path,
    chat_template: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> HiddenStates:
    """Pooled hidden states of `texts` (in their order), from the cache where present."""
    identity = backend.identity()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create {cache_dir}: {exc.strerror or exc}") from None
    paths = [cache_dir / f"{item_key(identity, chat_template, t)}.npy" for t in texts]
    found = {i: a for i, p in enumerate(paths) if (a := _load(p)) is not None}
    todo = [i for i in range(len(texts)) if i not in found]
    encode = _Encoder(backend, chat_template)
    encoded = {i: encode(texts[i]) for i in todo}
    todo.sort(key=lambda i: len(encoded[i][0]))  # similar lengths share a batch: little padding
    size = batch_size or batch_size_for(backend, max((len(encoded[i][0]) for i in todo), default=1))
    start = time.perf_counter()
    for b in range(0, len(todo), size):
        chunk = todo[b : b + size]
        for i, array in zip(chunk, _forward(backend, [encoded[i] for i in chunk]), strict=True):
            _save(paths[i], array)
            found[i] = array
        if progress:
            progress(len(found), len(texts))
    return _states(
        [found[i] for i in range(len(texts))],
        identity,
        backend.environment(),
        len(todo),
        len(texts) - len(todo),
        time.perf_counter() - start,
    )


def _states(
    arrays: list[np.ndarray],
    model: dict[str, Any],
    environment: dict[str, Any],
    extracted: int,
    cached: int,
    seconds: float,
) -> HiddenStates:
    stacked = np.stack(arrays)  # [n, 2 pools, layers, hidden]
    return HiddenStates(
        {pool: stacked[:, k] for k, pool in enumerate(POOLS)}, model, environment, extracted, cached, seconds
    )


def _remembered(cache_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((cache_dir / MODELS_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def states_for(
    spec: str | None,
    model_args: dict[str, Any],
    texts: Sequence[str],
    cache_dir: Path,
    chat_template: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> HiddenStates:
    """The states of `texts` under the model `spec`: from the cache alone when this request was loaded
    before and every item is there, else from the model (loaded here) for the items missing."""
    request = stable_hash({"spec": spec or "hf/smollm2", "args": public_args(model_args)})[:16]
    seen = _remembered(cache_dir).get(request)
    if seen:
        arrays = [_load(cache_dir / f"{item_key(seen['model'], chat_template, t)}.npy") for t in texts]
        present = [a for a in arrays if a is not None]
        if len(present) == len(arrays):
            return _states(present, seen["model"], seen["environment"], 0, len(texts), 0.0)
    backend = load_model(spec, model_args)
    states = extract(backend, texts, cache_dir, chat_template, batch_size, progress)
    remembered = {
        **_remembered(cache_dir),
        request: {"model": states.model, "environment": states.environment},
    }
    atomic_write(cache_dir / MODELS_FILE, json.dumps(remembered, indent=1, default=str))
    return states
