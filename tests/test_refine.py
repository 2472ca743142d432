"""The refine variant's control flow with scripted agent replies (improve, stall, stop, budget), the
dev/test separation, the saved artifact and its reuse, against the loopback server."""

from __future__ import annotations

import json
import re

import pytest

from conftest import run_with_client
from emobench.runner import answer_sample
from emobench.task import ChoiceTask
from emobench.types import Sample
from emobench.variants import make_variant

DEV = [
    Sample(
        f"d{i}",
        f"Dev item number {i}: a long enough story about someone's day at work.",
        0,
        ["Calm", "Anger"],
    )
    for i in range(6)
]
TEST = [
    Sample(
        f"t{i}",
        f"Test item number {i}: another long enough story about a family dinner.",
        0,
        ["Calm", "Anger"],
    )
    for i in range(3)
]


class Toy(ChoiceTask):
    name = "toy_refine"
    instruction = "INSTR-0"
    template = "{{ instruction }}\n{{ input }}\n{{ lettered_choices }}"
    splits = ("test", "dev")

    def load_samples(self, split="test"):
        return list(DEV if split == "dev" else TEST)


def scripted(levels: dict[str, int]):
    """Agents reply in script; the target answers the first `levels[instruction]` dev items right."""
    state = {"student": 0, "agent_prompts": []}

    def answer(messages):
        text = messages[-1]["content"]
        if text.startswith("You are the "):
            state["agent_prompts"].append(text)
        if text.startswith("You are the Planner"):
            return json.dumps({"aspects": ["cues", "format"]})
        if text.startswith("You are the Teacher"):
            return json.dumps({"edits": ["attend to cues", "say less"]})
        if text.startswith("You are the Critic"):
            return "Keep edit 1."
        if text.startswith("You are the Student"):
            state["student"] += 1
            return json.dumps({"instruction": f"INSTR-{state['student']}"})
        instr = re.match(r"(INSTR-\d+)", text).group(1)
        n = int(re.search(r"number (\d+)", text).group(1))
        return '{"answer": "A"}' if n < levels.get(instr, 0) else '{"answer": "B"}'

    return answer, state


run = run_with_client


def optimise(make_server, tmp_path, levels, **args):
    answer, state = scripted(levels)
    srv = make_server(answer_fn=answer)
    variant = make_variant("refine", {"artifact_dir": str(tmp_path), **args})
    artifact, path = run(srv, lambda c: variant.optimise(Toy(), c, DEV))
    return artifact, path, state, srv


def test_improves_then_stops_on_patience(make_server, tmp_path):
    artifact, path, _, _ = optimise(
        make_server,
        tmp_path,
        {"INSTR-0": 1, "INSTR-1": 3, "INSTR-2": 3, "INSTR-3": 2},
        max_rounds=5,
        patience=2,
    )
    assert [h["decision"] for h in artifact["history"]] == ["baseline", "improved", "stalled", "stalled"]
    assert artifact["stop_reason"] == "patience" and artifact["best_instruction"] == "INSTR-1"
    assert artifact["best_dev_score"] == pytest.approx(0.5)
    assert path.name == "toy_refine__loop.json" and json.loads(path.read_text())["transcripts"]


def test_stops_at_max_rounds_when_every_round_improves(make_server, tmp_path):
    artifact, *_ = optimise(
        make_server, tmp_path, {"INSTR-0": 0, "INSTR-1": 1, "INSTR-2": 2, "INSTR-3": 3}, max_rounds=2
    )
    assert artifact["stop_reason"] == "max_rounds" and artifact["best_instruction"] == "INSTR-2"
    assert [h["dev_score"] for h in artifact["history"]] == pytest.approx([0.0, 1 / 6, 2 / 6])


def test_stops_on_a_perfect_dev_score(make_server, tmp_path):
    artifact, *_ = optimise(make_server, tmp_path, {"INSTR-0": 2, "INSTR-1": 6}, max_rounds=5)
    assert artifact["stop_reason"] == "perfect dev score" and artifact["best_instruction"] == "INSTR-1"


def test_budget_exhausted_stops_before_overspending(make_server, tmp_path):
    # baseline 6 + planner 1 + teacher/critic/student 3 + target 6 = 16; the second round cannot start
    artifact, _, state, srv = optimise(
        make_server, tmp_path, {"INSTR-0": 1, "INSTR-1": 2}, max_rounds=5, max_calls=18
    )
    assert artifact["stop_reason"] == "budget" and artifact["best_instruction"] == "INSTR-1"
    assert artifact["agent_calls_and_dev_answers"] <= 18
    assert srv.state.snapshot()["requests"] == artifact["usage"]["calls"] <= 18


def test_no_test_item_reaches_an_agent_and_the_artifact_is_reused(make_server, tmp_path):
    answer, state = scripted({"INSTR-0": 1, "INSTR-1": 4})
    srv = make_server(answer_fn=answer)
    task = Toy()
    variant = make_variant("refine", {"artifact_dir": str(tmp_path), "max_rounds": 1})

    async def go(client):
        await variant.prepare(task, client, DEV)
        return [await answer_sample(task, variant, s, client) for s in TEST]

    records = run(srv, go)
    assert state["agent_prompts"] and all(s.input not in p for s in TEST for p in state["agent_prompts"])
    assert all("INSTR-1" in r.prompt for r in records)
    first = records[0].metadata["trace"]["refine"]
    assert first["optimisation_usage"]["calls"] == records[0].calls - 1  # optimisation charged once
    assert all(r.calls == 1 for r in records[1:])
    # a second run reuses the artifact: no agent and no dev call
    before = srv.state.snapshot()["requests"]
    again = make_variant("refine", {"artifact_dir": str(tmp_path), "max_rounds": 1})
    rec = run(srv, lambda c: _prepare_and_answer(again, task, c, TEST[0]))
    assert srv.state.snapshot()["requests"] == before + 1 and rec.metadata["trace"]["refine"]["reused"]


async def _prepare_and_answer(variant, task, client, sample):
    await variant.prepare(task, client, DEV)
    return await answer_sample(task, variant, sample, client)


def test_a_test_item_that_is_also_a_dev_item_is_refused(make_server, tmp_path):
    answer, _ = scripted({"INSTR-0": 1})
    srv = make_server(answer_fn=answer)
    variant = make_variant("refine", {"artifact_dir": str(tmp_path), "max_rounds": 1})
    rec = run(srv, lambda c: _prepare_and_answer(variant, Toy(), c, DEV[2]))
    assert rec.outcome == "error" and "seen by the refine agents" in rec.error


def test_refine_command_optimises_and_reports(make_server, tmp_path, monkeypatch, capsys):
    from emobench import cli, registry

    monkeypatch.setattr(registry, "make_task", lambda name, args, data_dir=None, files=(): Toy())
    answer, _ = scripted({"INSTR-0": 1, "INSTR-1": 2})
    srv = make_server(answer_fn=answer)
    code = cli.main(
        [
            "refine",
            "--task",
            "toy_refine",
            "--model",
            "openai/loop",
            "--base-url",
            srv.base_url,
            "--max-rounds",
            "1",
            "--output",
            str(tmp_path),
            "--no-cache",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "round 1: 0.333  improved" in out and "INSTR-1" in out
    assert (tmp_path / "toy_refine__loop.json").is_file()
