"""`fewshot`: retrieved demonstrations (PRC-Emo style). For each test sample, the k most similar items
of the task's **train** split (BM25, or dense with `retriever=dense`) are shown as solved examples,
each as a user turn (the task's own prompt) and an assistant turn (the gold answer in the task's reply
format), before the sample itself. The most similar demonstration comes last, nearest the question.

Never shown: the sample itself (same id or same input text) and its matched pair (a sample whose id or
`metadata["pair_id"]` links them). A task without a train split falls back to its dev split; with
neither, the sample is answered zero-shot and the trace says so (`fewshot.note`), never with test items.
Long contexts of demonstrations are cut to `demo_context_tokens` word tokens to keep prompts bounded.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from ..client import ModelClient
from ..retrieval import RETRIEVERS, TokenizedText, make_retriever
from ..task import Task
from ..types import Message, Sample, Usage
from .base import Variant, VariantOutput, ask


def sample_text(sample: Sample) -> str:
    """What similarity is computed on: the question (and choices), not the long context."""
    text = sample.input if isinstance(sample.input, str) else " ".join(m["content"] for m in sample.input)
    return " ".join([text, *(sample.choices or []), str(sample.metadata.get("subject") or "")]).strip()


def linked(a: Sample, b: Sample) -> bool:
    """True when `b` is `a` itself or its matched pair."""
    if a.id == b.id or (isinstance(a.input, str) and a.input == b.input):
        return True
    pa, pb = a.metadata.get("pair_id"), b.metadata.get("pair_id")
    return (pa is not None and (pa == pb or pa == b.id)) or (pb is not None and pb == a.id)


class FewShot(Variant):
    name = "fewshot"
    description = "k retrieved demonstrations from the train split"
    uses_dev = True
    arg_defaults = {"k": 3, "retriever": "bm25", "demo_context_tokens": 300}

    def __init__(self, **args: Any):
        super().__init__(**args)
        if self.args["retriever"] not in RETRIEVERS:
            from ..errors import ConfigError

            raise ConfigError(f"variant fewshot: retriever must be one of {', '.join(RETRIEVERS)}")
        self._pools: dict[str, tuple[str, list[Sample], Any]] = {}

    async def prepare(self, task: Task, client: ModelClient, dev_samples: list[Sample]) -> None:
        split, pool = "none", []
        if task.has_split("train"):
            split, pool = "train", list(task.split_samples("train"))
        if not pool and dev_samples:
            split, pool = "dev", list(dev_samples)
        if not pool:
            print(
                f"emobench: fewshot: task {task.name} has no train or dev split; its samples are answered "
                "zero-shot (noted in each trace)",
                file=sys.stderr,
            )
        index = make_retriever(self.args["retriever"], [sample_text(s) for s in pool]) if pool else None
        self._pools[task.name] = (split, pool, index)

    def demonstrations(self, task: Task, sample: Sample) -> tuple[str, list[Sample], list[float]]:
        split, pool, index = self._pools.get(task.name, ("none", [], None))
        if index is None:
            return split, [], []
        k = int(self.args["k"])
        hits = index.search(sample_text(sample), min(len(pool), k + 8))
        chosen = [(pool[h.index], h.score) for h in hits if not linked(sample, pool[h.index])][:k]
        return split, [s for s, _ in chosen], [sc for _, sc in chosen]

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        if task.name not in self._pools:
            await self.prepare(task, client, [])
        split, demos, scores = self.demonstrations(task, sample)
        target = task.render(sample)
        system = [m for m in target if m["role"] == "system"]
        messages: list[Message] = list(system)
        for demo in reversed(demos):  # most similar last
            for m in task.render(self._shortened(demo)):
                if m["role"] != "system":
                    messages.append(m)
            messages.append({"role": "assistant", "content": task.format_answer(demo.target, demo)})
        messages += [m for m in target if m["role"] != "system"]
        trace: dict[str, Any] = {
            "fewshot": {
                "split": split,
                "demos": [d.id for d in demos],
                "scores": [round(s, 4) for s in scores],
            }
        }
        if split == "none":
            trace["fewshot"]["note"] = "no train or dev split: answered zero-shot"
        return await ask(task, sample, messages, client, usage, trace)

    def _shortened(self, demo: Sample) -> Sample:
        limit = int(self.args["demo_context_tokens"])
        if not demo.context:
            return demo
        tt = TokenizedText(demo.context)
        if len(tt) <= limit:
            return demo
        return dataclasses.replace(demo, context=demo.context[: tt.end(limit - 1)] + " …")
