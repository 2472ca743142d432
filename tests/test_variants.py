"""cot, rag, coem and fewshot end to end against the loopback OpenAI-compatible server, through the
runner's `answer_sample` (the same path `emobench run` takes), plus the CLI comparison table."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import pytest
from test_retrieval import PASSAGE, QUESTION, long_context

from conftest import run_with_client
from emobench.client import ModelClient
from emobench.models import make_backend
from emobench.runner import answer_sample
from emobench.task import ChoiceTask, Task
from emobench.types import Sample
from emobench.variants import make_variant
from emobench.variants.cot import final_answer

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


class LongQA(Task):
    name = "toy_long_qa"
    family = "long_context_qa"
    template = "{{ context }}\n\nQuestion: {{ input }}\nAnswer concisely."
    splits = ("test",)

    def parse(self, text, sample):
        return text.strip() or None

    def score(self, parsed, sample):
        return float(sample.target.lower() in parsed.lower())


class Feelings(ChoiceTask):
    name = "toy_feelings"
    template = '{{ instruction }}\n{{ input }}\n{{ lettered_choices }}\nReply as JSON {"answer": "<letter>"}.'
    splits = ("test", "train")
    TRAIN = [
        Sample(f"tr{i}", f"Train story {i}: {t}", i % 2, ["Joy", "Grief"], metadata=m)
        for i, (t, m) in enumerate(
            [
                ("a wedding dance", {}),
                ("a funeral of a friend", {}),
                ("a surprise party", {"pair_id": "te0"}),
                ("a lost dog never found", {}),
                ("a birthday cake", {}),
            ]
        )
    ]

    def load_samples(self, split="test"):
        if split == "train":
            return list(self.TRAIN)
        return [
            Sample("te0", "Story: a surprise party with friends", 0, ["Joy", "Grief"]),
            Sample("te1", "Story: a friend's funeral", 1, ["Joy", "Grief"]),
        ]


def run(coro_fn, server):
    return run_with_client(server, coro_fn)


def qa_sample(n_tokens=20_000):
    text, _ = long_context(n_tokens)
    return Sample("q1", QUESTION, "a third", context=text)


def last_prompt(server_prompts):
    return server_prompts[-1]


@pytest.fixture
def recording(make_server):
    prompts: list[list[dict]] = []

    def answer(messages):
        prompts.append(messages)
        text = messages[-1]["content"]
        if "careful analyst" in text:
            return "NOTE: relevant" if "anxiety" in text else "NONE"
        if "Final answer:" in text:
            return 'Thinking about it... joy fits.\nFinal answer: {"answer": "A"}'
        return "about a third" if "expressive journals" in text else '{"answer": "A"}'

    srv = make_server(answer_fn=answer)
    srv.prompts = prompts
    return srv


def test_final_answer_reads_only_after_the_last_marker():
    assert (
        final_answer('A seems wrong. Final answer: B ... final answer: {"answer": "C"}') == '{"answer": "C"}'
    )
    assert final_answer("<think>x</think>Answer: B") == "Answer: B"


def test_cot_asks_for_reasoning_and_parses_only_the_final_answer(recording):
    task, variant = Feelings(), make_variant("cot")
    rec = run(lambda c: answer_sample(task, variant, task.load_samples()[0], c), recording)
    assert "Final answer:" in recording.prompts[-1][-1]["content"]
    assert rec.response == '{"answer": "A"}' and rec.outcome == "correct" and rec.calls == 1
    assert "Thinking" in rec.metadata["trace"]["cot"]["replies"][0]


def test_rag_adds_the_answer_bearing_chunk_and_logs_offsets(recording):
    task, variant = LongQA(), make_variant("rag", {"k": 4, "chunk_size": 128})
    sample = qa_sample()
    rec = run(lambda c: answer_sample(task, variant, sample, c), recording)
    trace = rec.metadata["trace"]["rag"]
    assert trace["context"] == "full+chunks" and len(trace["retrieved"]) == 4
    assert all(
        sample.context[r["start"] : r["end"]] in recording.prompts[-1][-1]["content"]
        for r in trace["retrieved"]
    )
    at = sample.context.index(PASSAGE)
    assert any(r["start"] <= at < r["end"] for r in trace["retrieved"])
    assert rec.outcome == "correct" and rec.calls == 1


def test_rag_replace_sends_only_the_chunks(recording):
    task, variant = LongQA(), make_variant("rag", {"k": 2, "chunk_size": 128, "replace": True})
    sample = qa_sample(5_000)
    rec = run(lambda c: answer_sample(task, variant, sample, c), recording)
    sent = recording.prompts[-1][-1]["content"]
    assert rec.metadata["trace"]["rag"]["context"] == "chunks_only"
    assert len(sent) < len(sample.context) / 5 and "expressive journals" in sent


def test_rag_flags_chunks_that_contain_the_gold_label():
    class EC(Feelings):
        pass

    text = "Anna opened the letter. " * 300 + "Anna felt pure joy at the news. " + "The bus was late. " * 300
    sample = Sample(
        "e1", "What does Anna feel?", 0, ["Joy", "Grief"], context=text, metadata={"subject": "Anna"}
    )
    from emobench.retrieval import chunk_params, gold_texts, retrieval_query

    assert retrieval_query(EC(), sample) == "Anna" and chunk_params(EC(), sample, {}) == (128, 1)
    from emobench.retrieval import leaking_chunks, retrieve_chunks

    chunks, hits = retrieve_chunks(text, "joy news", 1, 128, 50)
    assert leaking_chunks([chunks[h.index] for h in hits], gold_texts(EC(), sample))


def test_coem_runs_five_stages_and_counts_the_sage_calls(recording):
    task, variant = LongQA(), make_variant("coem", {"k_initial": 6, "k_final": 3})
    sample = qa_sample(8_000)

    async def go(client):
        await variant.prepare(task, client, [])
        return await answer_sample(task, variant, sample, client)

    rec = run(go, recording)
    trace = rec.metadata["trace"]["coem"]
    assert trace["sage_calls"] == 6 and len(trace["final"]) == 3 and rec.calls == 7  # 6 sage + 1 final
    final_prompt = recording.prompts[-1][-1]["content"]
    assert "NOTE: relevant" in final_prompt and "expressive journals" in final_prompt
    assert rec.outcome == "correct"


def test_coem_sage_can_be_another_model(recording, make_server):
    sage_srv = make_server(answers={"careful analyst": "SAGE SAYS"})
    task = LongQA()
    variant = make_variant("coem", {"k_initial": 2, "k_final": 2})
    variant.args["sage"] = "openai/sage-model"

    async def go(client):
        client.backend.base_url = sage_srv.base_url  # the sage inherits the run's base URL
        await variant.prepare(task, client, [])
        client.backend.base_url = recording.base_url
        return await answer_sample(task, variant, qa_sample(3_000), client)

    rec = run(go, recording)
    assert sage_srv.state.snapshot()["requests"] == 2 and rec.calls == 3
    assert "SAGE SAYS" in recording.prompts[-1][-1]["content"]


def test_fewshot_shows_similar_train_items_never_the_sample_or_its_pair(recording):
    task, variant = Feelings(), make_variant("fewshot", {"k": 2})

    async def go(client):
        await variant.prepare(task, client, [])
        return await answer_sample(task, variant, task.load_samples()[0], client)

    rec = run(go, recording)
    demos = rec.metadata["trace"]["fewshot"]["demos"]
    assert len(demos) == 2 and "tr2" not in demos  # tr2 is te0's matched pair
    sent = recording.prompts[-1]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert (
        sent[-1]["content"].startswith("\nStory: a surprise party")
        or "surprise party with friends" in sent[-1]["content"]
    )
    assert json.loads(sent[1]["content"])["answer"] in "AB"


def test_fewshot_without_train_or_dev_says_so(recording):
    class NoTrain(Feelings):
        splits = ("test",)

    task, variant = NoTrain(), make_variant("fewshot")

    async def go(client):
        await variant.prepare(task, client, [])
        return await answer_sample(task, variant, task.load_samples()[0], client)

    rec = run(go, recording)
    assert "zero-shot" in rec.metadata["trace"]["fewshot"]["note"]


@pytest.mark.slow
def test_cli_runs_every_variant_and_prints_the_paired_comparison(server, tmp_path):
    fixtures = ROOT / "tests" / "fixtures"
    data = tmp_path / "data"
    data.mkdir()
    for sub in ("longemotion", "emobench"):
        (data / sub).symlink_to(fixtures / sub)
    cmd = [
        sys.executable,
        "-m",
        "emobench.cli",
        "run",
        "--variant",
        "direct,cot,rag,coem,refine,fewshot",
        "--tasks",
        "longemotion_qa,emobench_ea",
        "--limit",
        "5",
        "--model",
        "openai/loop",
        "--base-url",
        server.base_url,
        "--data-dir",
        str(data),
        "-o",
        str(tmp_path / "run"),
        "-q",
        "--variant-arg",
        f"artifact_dir={tmp_path / 'refined'}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    by = {(e["task"], e["variant"]): e for e in results["results"]}
    assert len(by) == 12
    for (task, variant), e in by.items():
        assert e["n_errors"] == 0, (task, variant, e)
        if variant != "direct":
            assert e["vs_direct"]["n"] == e["n_samples"] and e["vs_direct"]["cost_multiple"] is not None
    assert by[("longemotion_qa", "coem")]["vs_direct"]["cost_multiple"] > 1.5
    assert re.search(r"Δ vs direct", out.stdout)


@pytest.mark.slow
def test_variants_run_on_the_embedded_model():
    from conftest import has_embedded_model

    if not has_embedded_model():
        pytest.skip("embedded SmolLM2 model (extra `local`) not installed")

    async def main():
        backend = make_backend(None)
        client = ModelClient(backend, None, concurrency=1)
        try:
            task, sample = LongQA(), qa_sample(400)
            coem = make_variant("coem", {"k_initial": 2, "k_final": 1, "sage_max_tokens": 32})
            await coem.prepare(task, client, [])
            # cot last: on this llama.cpp build a call after a long generation has crashed the process
            return [
                await answer_sample(task, v, sample, client)
                for v in (make_variant("rag", {"k": 2}), coem, make_variant("cot", {"max_tokens": 128}))
            ]
        finally:
            await backend.close()

    recs = asyncio.run(main())
    assert [r.outcome != "error" for r in recs] == [True, True, True], [r.error for r in recs]
    assert recs[1].calls == 3  # two sage annotations + the final answer
