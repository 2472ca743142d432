"""Long-context fitting: the declared truncation policy, applied by `ask` for every variant, and
recorded per sample; checked on plain functions and end to end against the loopback server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conftest import FIXTURES
from emobench.cli import main
from emobench.client import ModelClient
from emobench.context import MARKER, ContextTooLong, fit_messages, truncate_text
from emobench.errors import ConfigError
from emobench.models import make_backend
from emobench.registry import make_task
from emobench.types import Usage
from emobench.variants.base import Variant, ask
from emobench.variants.direct import Direct


def words(text: str) -> int:
    """A test tokenizer: one token per whitespace-separated word."""
    return len(text.split())


class FakeWindowClient:
    """Only what `fit_messages` reads from a client: a window and a token counter."""

    def __init__(self, window: int | None):
        self.context_window = window

    def count_tokens(self, text: str) -> int:
        return words(text)


DOC = " ".join(f"w{i}" for i in range(1000))


def test_middle_policy_keeps_head_and_tail_within_budget():
    kept = truncate_text(DOC, 100, "middle", words)
    assert words(kept) <= 100
    assert kept.startswith("w0 w1 w2") and kept.endswith("w998 w999")
    assert "w500" not in kept.split()


def test_left_policy_keeps_only_the_tail():
    kept = truncate_text(DOC, 50, "left", words)
    assert words(kept) <= 50 and kept.endswith("w999") and "w0" not in kept.split()


def test_text_that_fits_is_returned_unchanged():
    assert truncate_text("a b c", 10, "middle", words) == "a b c"


def test_fit_is_a_no_op_when_the_prompt_fits():
    messages = [{"role": "user", "content": "Question? " + DOC}]
    out, info = fit_messages(messages, DOC, FakeWindowClient(5000), max_tokens=100)
    assert out == messages and info["truncated"] is False


def test_fit_cuts_only_the_context_and_the_result_fits_the_window():
    messages = [
        {"role": "system", "content": "Be concise."},
        {"role": "user", "content": f"Article:\n{DOC}\n\nQuestion: what is w0?"},
    ]
    out, info = fit_messages(messages, DOC, FakeWindowClient(400), max_tokens=50)
    assert info["truncated"] and info["context_tokens"] == 1000 and info["kept_tokens"] < 400
    assert out[0] == messages[0]
    assert out[1]["content"].startswith("Article:\nw0 ") and out[1]["content"].endswith(
        "Question: what is w0?"
    )
    assert info["prompt_tokens"] + 50 <= 400


def test_error_policy_refuses_with_the_token_counts():
    messages = [{"role": "user", "content": DOC}]
    with pytest.raises(ContextTooLong, match="1000 tokens.*400-token window"):
        fit_messages(messages, DOC, FakeWindowClient(400), max_tokens=50, policy="error")


def test_a_variant_that_dropped_the_context_still_gets_its_longest_message_cut():
    messages = [{"role": "user", "content": "short"}, {"role": "user", "content": DOC}]
    out, info = fit_messages(messages, "not in the prompt", FakeWindowClient(300), max_tokens=10)
    assert info["truncated"] and out[0]["content"] == "short" and words(out[1]["content"]) < 300


def test_unknown_policy_is_rejected_when_the_task_is_made():
    with pytest.raises(ConfigError, match="truncate='sideways'"):
        make_task("longemotion_qa", {"truncate": "sideways"}, str(FIXTURES / "longemotion"))


class FewShotVariant(Variant):
    """A variant that renders its own prompt (another instruction, an extra example turn)."""

    name = "test_fewshot"

    async def answer(self, task, sample, client, usage):
        messages = [
            {"role": "user", "content": "Example: answer tersely."},
            {"role": "assistant", "content": "ok"},
            *task.render(sample, instruction="Answer in one word."),
        ]
        return await ask(task, sample, messages, client, usage)


def test_every_variant_gets_the_fitted_context_through_ask(server):
    seen: list[list[dict[str, str]]] = []
    server.config.answer_fn = lambda messages: seen.append(messages) or "calm"
    task = make_task("longemotion_qa", {}, str(FIXTURES / "longemotion"))
    sample = next(iter(task.load_samples()))
    backend = make_backend("openai/m", {"context_window": 420}, base_url=server.base_url)
    client = ModelClient(backend, cache=None)
    out = asyncio.run(FewShotVariant().answer(task, sample, client, Usage()))
    sent = "\n".join(m["content"] for m in seen[0])
    assert out.trace["context"]["truncated"] is True
    assert MARKER.strip() in sent and "Example: answer tersely." in sent and sample.input in sent
    assert sum(client.count_tokens(m["content"]) for m in seen[0]) + task.gen_params.max_tokens <= 420


def _run(tmp_path: Path, server, *extra: str, exit_code: int = 0) -> list[dict]:
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--model",
            "openai/m",
            "--base-url",
            server.base_url,
            "--tasks",
            "longemotion_qa",
            "--data-dir",
            str(FIXTURES / "longemotion"),
            "-q",
            "--output",
            str(out),
            *extra,
        ]
    )
    assert code == exit_code
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_truncation_is_recorded_per_sample_and_the_policy_in_the_manifest(tmp_path, server):
    records = _run(tmp_path, server, "--model-arg", "context_window=420")
    info = records[0]["metadata"]["trace"]["context"]
    assert info["truncated"] is True and info["policy"] == "middle"
    assert info["kept_tokens"] < info["context_tokens"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["manifest"]["tasks"]["longemotion_qa"]["args"]["truncate"] == "middle"


def test_error_policy_makes_an_error_outcome_not_a_crash(tmp_path, server):
    records = _run(
        tmp_path, server, "--model-arg", "context_window=420", "--task-arg", "truncate=error", exit_code=3
    )  # the run finished, with samples in error
    assert {r["outcome"] for r in records} == {"error"}
    assert "does not fit" in records[0]["error"]
    assert server.state.snapshot()["requests"] == 0  # refused before any model call


def test_a_reask_sends_the_same_fitted_prompt_at_a_higher_temperature(server):
    """Re-asking is a generic Task option (`reask_unparseable`), not EQ-Bench's alone: any task that sets
    it gets its unreadable replies asked again, with the context fitted once for every attempt."""
    seen: list[list[dict[str, str]]] = []
    server.config.answer_fn = lambda messages: (
        seen.append(messages) or ('{"index": 1}' if len(seen) > 1 else "hmm")
    )
    task = make_task("longemotion_ed", {}, str(FIXTURES / "longemotion"))
    task.reask_unparseable = 2
    sample = next(iter(task.load_samples()))
    backend = make_backend("openai/m", {"context_window": 300}, base_url=server.base_url)
    out = asyncio.run(Direct().answer(task, sample, ModelClient(backend, cache=None), Usage()))
    assert len(seen) == 2 and seen[0] == seen[1] and out.trace["context"]["truncated"] is True
    assert out.responses == ['{"index": 1}']
    assert [a["temperature"] for a in out.trace["reask"][0]["attempts"]] == [0.0, 0.15]
