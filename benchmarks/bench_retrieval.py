"""RAG chunking + retrieval latency over a 45,000-token context (target: <= 50 ms per query, bm25s).

One "query" is what the rag variant does for one sample: tokenise the sample's context, cut it into
chunks, build the BM25 index and rank the chunks for the query. The context is synthetic English
prose (original sentences in random order) with one answer-bearing passage planted at a random place;
the script also reports whether that passage was ranked in the top k.

    python benchmarks/bench_retrieval.py                 # bm25, chunk sizes 128 and 512
    python benchmarks/bench_retrieval.py --dense         # also the dense retriever (extra `dense`)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from emobench.retrieval import TokenizedText, dense_available, retrieve_chunks

SUBJECTS = [
    "the committee",
    "my neighbour",
    "the old teacher",
    "a young nurse",
    "the river town",
    "her brother",
    "the research group",
    "the night shift",
    "a quiet student",
    "the harbour office",
]
VERBS = [
    "discussed",
    "remembered",
    "postponed",
    "described",
    "questioned",
    "celebrated",
    "measured",
    "ignored",
    "repaired",
    "announced",
]
OBJECTS = [
    "the annual budget",
    "a broken window",
    "the spring festival",
    "an unusual letter",
    "the survey results",
    "a long walk home",
    "the weather report",
    "the new timetable",
    "a shared garden",
    "the final chapter",
]
TAILS = [
    "before the evening meeting.",
    "without much comment.",
    "while the rain kept falling.",
    "as everyone had expected.",
    "in a surprisingly calm voice.",
    "after a short delay.",
    "with some reluctance.",
    "during the long afternoon.",
]
NEEDLE = (
    "The participants who wrote expressive journals for six weeks reported a marked drop in "
    "rumination, and their anxiety scores fell by about a third compared with the control group."
)
QUERY = "How much did anxiety scores fall for participants who wrote expressive journals?"


def synthetic_context(n_tokens: int, seed: int = 0) -> tuple[str, int]:
    """Prose of about `n_tokens` word tokens with NEEDLE planted once; returns (text, needle offset)."""
    rng = random.Random(seed)
    sentences: list[str] = []
    count = 0
    while count < n_tokens:
        s = f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}"
        sentences.append(s)
        count += len(TokenizedText(s))
    sentences.insert(rng.randrange(len(sentences)), NEEDLE)
    text = " ".join(sentences)
    return text, text.index(NEEDLE)


def bench(text: str, needle_at: int, size: int, k: int, retriever: str, repeats: int) -> dict:
    retrieve_chunks(text[:2000], QUERY, k, size, 50, retriever)  # warm imports / model load
    times, found = [], False
    for _ in range(repeats):
        t0 = time.perf_counter()
        chunks, hits = retrieve_chunks(text, QUERY, k, size, 50, retriever)
        times.append((time.perf_counter() - t0) * 1000)
        kept = [chunks[h.index] for h in hits]
        found = any(c.start <= needle_at < c.end for c in kept)
    return {
        "retriever": retriever,
        "chunk_size": size,
        "overlap": 50,
        "k": k,
        "n_chunks": len(chunks),
        "median_ms": round(statistics.median(times), 2),
        "p90_ms": round(sorted(times)[int(0.9 * len(times))], 2),
        "min_ms": round(min(times), 2),
        "needle_in_top_k": found,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=45_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--dense", action="store_true", help="also time the dense retriever")
    args = ap.parse_args()
    text, at = synthetic_context(args.tokens)
    print(json.dumps({"context_tokens": len(TokenizedText(text)), "context_chars": len(text)}))
    rows = [bench(text, at, 512, 16, "bm25", args.repeats), bench(text, at, 128, 4, "bm25", args.repeats)]
    if args.dense:
        if dense_available():
            rows.append(bench(text, at, 512, 16, "dense", 2))
        else:
            print("dense retriever not installed (pip install 'emobench[dense]'); skipped")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
