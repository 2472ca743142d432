"""`rag`: retrieve the most relevant chunks of the sample's own long context and add them to the prompt
(LongEmotion §1.4). There is no external corpus: the source is the sample's context.

Per sample: chunk `sample.context` (word-token windows, LongEmotion sizes: 512 for long-context QA,
128 otherwise, overlap 50), rank the chunks for a task-specific query (the question; the subject for
emotion classification; a task may define `retrieval_query(sample)`), keep the top k, restore document
order and append them to the task's prompt. The full context stays in the prompt when it fits the
model's window, as LongEmotion does; `replace=true` (or a context that does not fit) sends only the
chunks. Query-free items made of segments (LongEmotion ED) get the `outliers` segments least similar
to the rest. Every retrieved chunk is logged with its id and character offsets, and chunks that
contain the gold label text are flagged in the trace (`leaks`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import prompts
from ..client import ModelClient
from ..retrieval import RETRIEVERS, Chunk, Hit, leaking_chunks, outliers, retrieve_chunks
from ..task import Task
from ..types import Message, Sample, Usage
from .base import Variant, VariantOutput, ask


class RAG(Variant):
    name = "rag"
    description = "retrieve chunks of the sample's long context (BM25 or dense)"
    arg_defaults = {"retriever": "bm25", "chunk_size": None, "overlap": 50, "k": None, "replace": False,
                    "outliers": 8}

    def __init__(self, **args: Any):
        super().__init__(**args)
        if self.args["retriever"] not in RETRIEVERS:
            from ..errors import ConfigError

            raise ConfigError(f"variant rag: retriever must be one of {', '.join(RETRIEVERS)}")

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        units = retrieval_units(task, sample)
        if units:  # query-free outlier selection over the item's segments
            picked = outliers(units, int(self.args["outliers"]), self.args["retriever"])
            trace = {"rag": {"retriever": self.args["retriever"], "query": None, "n_chunks": len(units),
                             "retrieved": [{"id": i} for i in picked], "context": "full+chunks"}}
            messages = append_to_prompt(task.render(sample), prompts.render(
                "variants/rag.j2", passages=[units[i] for i in picked]))
            return await ask(task, sample, messages, client, usage, trace)
        if not sample.context:
            return await ask(task, sample, task.render(sample), client, usage, {"rag": "no context to retrieve from"})
        size, k = chunk_params(task, sample, self.args)
        query = retrieval_query(task, sample)
        chunks, hits = retrieve_chunks(sample.context, query, k, size, int(self.args["overlap"]),
                                       self.args["retriever"])
        kept = [chunks[h.index] for h in hits]
        messages, mode = with_passages(task, sample, client, [c.text for c in kept], "variants/rag.j2",
                                       "passages", bool(self.args["replace"]))
        trace = {"rag": {"retriever": self.args["retriever"], "chunk_size": size, "overlap": self.args["overlap"],
                         "k": k, "query": query[:500], "n_chunks": len(chunks), "context": mode,
                         "retrieved": retrieved_log(chunks, hits),
                         "leaks": leaking_chunks(kept, gold_texts(task, sample))}}
        return await ask(task, sample, messages, client, usage, trace)


# ---- helpers shared with coem (and usable by tasks) -------------------------------------------------
def retrieval_query(task: Task, sample: Sample) -> str:
    """The task's `retrieval_query(sample)` if it defines one, else the subject (emotion
    classification, LongEmotion EC), else the question text."""
    hook = getattr(task, "retrieval_query", None)
    if callable(hook):
        value = hook(sample)
        if value:
            return str(value)
    subject = sample.metadata.get("subject") or sample.metadata.get("Subject")
    if subject:
        return str(subject)
    if isinstance(sample.input, str):
        return sample.input
    users = [m["content"] for m in sample.input if m.get("role") == "user"]
    return users[-1] if users else ""


def retrieval_units(task: Task, sample: Sample) -> list[str] | None:
    """Pre-segmented items (LongEmotion ED): `task.retrieval_units(sample)` or metadata['segments']."""
    hook = getattr(task, "retrieval_units", None)
    units = hook(sample) if callable(hook) else sample.metadata.get("segments")
    if isinstance(units, list) and units and all(isinstance(u, str) for u in units):
        return units
    return None


def chunk_params(task: Task, sample: Sample, args: dict[str, Any]) -> tuple[int, int]:
    """(chunk size, k): the variant args, else the task's `rag_chunk_size`/`rag_k`, else LongEmotion's
    choices (QA: 512 and 16; a subject query: 128 and 1; otherwise 128 and 4)."""
    qa = task.family == "long_context_qa"
    size = args.get("chunk_size") or getattr(task, "rag_chunk_size", None) or (512 if qa else 128)
    subject = bool(sample.metadata.get("subject") or sample.metadata.get("Subject"))
    k = args.get("k") or getattr(task, "rag_k", None) or (16 if qa else 1 if subject else 4)
    return int(size), int(k)


def gold_texts(task: Task, sample: Sample) -> list[str]:
    """Texts whose presence in a retrieved chunk would let the answer be copied: the task's
    `leak_texts(sample)`, else the gold option's text. Long-context QA answers are extracted from the
    article by design, so they are not checked."""
    hook = getattr(task, "leak_texts", None)
    if callable(hook):
        return [str(t) for t in hook(sample) or []]
    if sample.choices and isinstance(sample.target, int) and 0 <= sample.target < len(sample.choices):
        return [sample.choices[sample.target]]
    if isinstance(sample.target, str) and task.family != "long_context_qa":
        return [sample.target]
    return []


def retrieved_log(chunks: list[Chunk], hits: list[Hit]) -> list[dict[str, Any]]:
    return [{**chunks[h.index].span(), "score": round(h.score, 4), "rank": h.rank} for h in hits]


def append_to_prompt(messages: list[Message], text: str) -> list[Message]:
    """A copy of `messages` with `text` added at the end of the last user message."""
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m["role"] == "user":
            m["content"] = f"{m['content']}\n\n{text}"
            break
    else:
        out.append({"role": "user", "content": text})
    return out


def fits(client: ModelClient, messages: list[Message], reserve: int) -> bool:
    window = client.context_window
    if not window:
        return True
    return client.count_tokens("\n".join(m["content"] for m in messages)) + reserve <= window


def with_passages(task: Task, sample: Sample, client: ModelClient, passages: list[Any], template: str,
                  name: str, replace: bool) -> tuple[list[Message], str]:
    """The task's prompt plus the retrieved passages. Keeps the full context when it fits (the mode
    'full+chunks'); otherwise, or with `replace`, the context is replaced by the passages alone."""
    block = prompts.render(template, **{name: passages})
    if not replace:
        messages = append_to_prompt(task.render(sample), block)
        if fits(client, messages, task.gen_params.max_tokens):
            return messages, "full+chunks"
    texts = [p if isinstance(p, str) else f"{p['chunk']}\n({p['note']})" for p in passages]
    only = prompts.render("variants/rag_only.j2", passages=texts)
    replaced = dataclasses.replace(sample, context=only)
    messages = task.render(replaced)
    if only not in "".join(m["content"] for m in messages):  # the template does not show the context
        messages = append_to_prompt(messages, only)
    return messages, "chunks_only"
