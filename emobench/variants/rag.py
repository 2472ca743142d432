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

from typing import Any

from .. import prompts
from ..client import ModelClient
from ..retrieval import (
    RETRIEVERS,
    chunk_params,
    gold_texts,
    leaking_chunks,
    outliers,
    retrieval_query,
    retrieval_units,
    retrieve_chunks,
    retrieved_log,
)
from ..task import Task
from ..types import Sample, Usage
from .base import Variant, VariantOutput, append_to_prompt, ask, with_passages


class RAG(Variant):
    name = "rag"
    description = "retrieve chunks of the sample's long context (BM25 or dense)"
    arg_defaults = {
        "retriever": "bm25",
        "chunk_size": None,
        "overlap": 50,
        "k": None,
        "replace": False,
        "outliers": 8,
    }

    def __init__(self, **args: Any):
        super().__init__(**args)
        if self.args["retriever"] not in RETRIEVERS:
            from ..errors import ConfigError

            raise ConfigError(f"variant rag: retriever must be one of {', '.join(RETRIEVERS)}")

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        units = retrieval_units(task, sample)
        if units:  # query-free outlier selection over the item's segments
            picked = outliers(units, int(self.args["outliers"]), self.args["retriever"])
            trace = {
                "rag": {
                    "retriever": self.args["retriever"],
                    "query": None,
                    "n_chunks": len(units),
                    "retrieved": [{"id": i} for i in picked],
                    "context": "full+chunks",
                }
            }
            messages = append_to_prompt(
                task.render(sample), prompts.render("variants/rag.j2", passages=[units[i] for i in picked])
            )
            return await ask(task, sample, messages, client, usage, trace)
        if not sample.context:
            return await ask(
                task, sample, task.render(sample), client, usage, {"rag": "no context to retrieve from"}
            )
        size, k = chunk_params(task, sample, self.args)
        query = retrieval_query(task, sample)
        chunks, hits = retrieve_chunks(
            sample.context, query, k, size, int(self.args["overlap"]), self.args["retriever"]
        )
        kept = [chunks[h.index] for h in hits]
        messages, mode = with_passages(
            task,
            sample,
            client,
            [c.text for c in kept],
            "variants/rag.j2",
            "passages",
            bool(self.args["replace"]),
        )
        trace = {
            "rag": {
                "retriever": self.args["retriever"],
                "chunk_size": size,
                "overlap": self.args["overlap"],
                "k": k,
                "query": query[:500],
                "n_chunks": len(chunks),
                "context": mode,
                "retrieved": retrieved_log(chunks, hits),
                "leaks": leaking_chunks(kept, gold_texts(task, sample)),
            }
        }
        return await ask(task, sample, messages, client, usage, trace)
