"""`coem`: LongEmotion's Collaborative Emotional Modeling in five stages (§1.5).

1. chunk the sample's context (128 word tokens, overlap 50);
2. initial ranking of the chunks for the task's query (BM25 by default; LongEmotion uses BGE-M3),
   keeping `k_initial` (8);
3. enrichment: a second "sage" model (`sage=<model spec>`, default the model under test) annotates
   each kept chunk (an extractive filter for long-context QA, a short psychological analysis
   otherwise; `prompts/variants/coem_sage.j2`);
4. re-ranking of the enriched packs (chunk + note) with the same query, keeping `k_final` (4), in
   document order;
5. generation by the model under test with the full context (when it fits) and the packs.

Pre-segmented, query-free items (ED) use every segment as a chunk and outlier selection in stages 2
and 4. The sage's calls are metered into the same sample usage, so cost multiples include them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .. import prompts
from ..client import ModelClient, client_for
from ..retrieval import (
    RETRIEVERS,
    Chunk,
    Hit,
    chunk_params,
    make_retriever,
    outliers,
    retrieval_query,
    retrieval_units,
    retrieve_chunks,
    retrieved_log,
)
from ..task import Task
from ..types import GenParams, Sample, Usage
from .base import Variant, VariantOutput, ask, with_passages


class CoEM(Variant):
    name = "coem"
    description = "LongEmotion's 5-stage collaborative pipeline with a sage model"
    arg_defaults = {
        "sage": None,
        "retriever": "bm25",
        "chunk_size": 128,
        "overlap": 50,
        "k_initial": 8,
        "k_final": 4,
        "sage_max_tokens": 256,
        "replace": False,
    }

    def __init__(self, **args: Any):
        super().__init__(**args)
        if self.args["retriever"] not in RETRIEVERS:
            from ..errors import ConfigError

            raise ConfigError(f"variant coem: retriever must be one of {', '.join(RETRIEVERS)}")
        self._sage: ModelClient | None = None

    async def prepare(self, task: Task, client: ModelClient, dev_samples: list[Sample]) -> None:
        if self._sage is None:
            self._sage = client_for(self.args["sage"], client)

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        sage = self._sage or client_for(self.args["sage"], client)
        units = retrieval_units(task, sample)
        if not units and not sample.context:
            return await ask(
                task, sample, task.render(sample), client, usage, {"coem": "no context to retrieve from"}
            )
        # stages 1-2: chunk and initial ranking
        k0, k1 = int(self.args["k_initial"]), int(self.args["k_final"])
        if units:
            query = None
            chunks = [Chunk(i, -1, -1, u, 0) for i, u in enumerate(units)]
            hits = [Hit(i, 0.0, r) for r, i in enumerate(outliers(units, k0, self.args["retriever"]))]
        else:
            query = retrieval_query(task, sample)
            size = int(self.args["chunk_size"] or chunk_params(task, sample, {})[0])
            chunks, hits = retrieve_chunks(
                sample.context or "", query, k0, size, int(self.args["overlap"]), self.args["retriever"]
            )
        # stage 3: enrichment by the sage, one call per kept chunk
        params = GenParams(temperature=0.0, max_tokens=int(self.args["sage_max_tokens"]))
        notes = await asyncio.gather(
            *(
                sage.chat(
                    [
                        {
                            "role": "user",
                            "content": prompts.render(
                                "variants/coem_sage.j2",
                                query=query or "which passage stands out emotionally, and why",
                                chunk=chunks[h.index].text,
                                family=task.family,
                            ),
                        }
                    ],
                    params,
                    usage,
                )
                for h in hits
            )
        )
        packs: list[dict[str, Any]] = [
            {"chunk": chunks[h.index].text, "note": n.text.strip(), "id": h.index}
            for h, n in zip(hits, notes, strict=True)
        ]
        # stage 4: re-rank the enriched packs
        texts = [f"{p['chunk']}\n{p['note']}" for p in packs]
        if len(packs) <= k1:
            order = list(range(len(packs)))
        elif query is None:
            order = outliers(texts, k1, self.args["retriever"])
        else:
            order = sorted(h.index for h in make_retriever(self.args["retriever"], texts).search(query, k1))
        final = sorted((packs[i] for i in order), key=lambda p: p["id"])
        # stage 5: generation by the model under test
        messages, mode = with_passages(
            task, sample, client, final, "variants/coem.j2", "packs", bool(self.args["replace"])
        )
        trace = {
            "coem": {
                "sage": sage.identity.get("model"),
                "query": (query or "")[:500],
                "n_chunks": len(chunks),
                "initial": retrieved_log(chunks, hits) if not units else [{"id": h.index} for h in hits],
                "sage_calls": len(hits),
                "final": [p["id"] for p in final],
                "context": mode,
            }
        }
        return await ask(task, sample, messages, client, usage, trace)
