"""EQ-Bench v2: the item formula, the parse rule, the prompt without revision, the benchmark score
with its parseable-fraction failure flag, loaders, and a loopback run end to end."""

from __future__ import annotations

import json
import math

import pytest

from emobench.cli import main
from emobench.errors import DataError
from emobench.registry import make_task
from tests.conftest import FIXTURES, shared_dataset

FIX = FIXTURES / "eqbench"


def _task(data_dir=FIX):
    return make_task("eqbench", {}, str(data_dir))


def _module():
    import sys

    _task()
    return sys.modules["emobench_tasks.eqbench"]


@pytest.mark.parametrize("d, expected", [
    (0, 0.0), (1, 6.5 / (1 + math.exp(3.6))), (4, 3.25), (5, 6.5 / (1 + math.exp(-1.2))), (6, 6.0), (10, 10.0),
])
def test_distance_penalty_worked_values(d, expected):
    assert _module().distance_penalty(d) == pytest.approx(expected)


def test_item_score_formula():
    m = _module()
    ref = {"A": 7, "B": 0, "C": 0, "D": 8}
    assert m.item_score(ref, ref) == 10.0
    answer = {"A": 6, "B": 0, "C": 4, "D": 1}  # d = 1, 0, 4, 7
    expected = 10 - 0.7477 * (6.5 / (1 + math.exp(3.6)) + 0 + 3.25 + 7)
    assert m.item_score(answer, ref) == pytest.approx(expected)
    assert m.item_score({"A": 0, "B": 10, "C": 10, "D": 0}, ref) < 0  # far off goes below zero


def test_prompt_has_revision_instructions_removed():
    task = _task()
    sample = next(iter(task.load_samples()))
    text = task.render(sample)[0]["content"]
    assert "Critique" not in text and "Revised scores" not in text and "First pass" not in text
    assert "Betrayed: <score>" in text and text.endswith("Your answer:")
    assert task.gen_params.temperature == 0.01 and task.gen_params.max_tokens == 60


@pytest.mark.parametrize("reply, ok", [
    ("Betrayed: 7\nAmused: 0\nGrateful: 0\nHurt: 8", True),
    ("Sure!\nHurt: 8\nBetrayed: 7\nGrateful: 1\nAmused: 0\n", True),
    ("Betrayed: 7\nAmused: 0\nHurt: 8", False),  # three pairs
    ("Betrayed: 7\nAmused: 0\nGrateful: 0\nAngry: 8", False),  # not the reference emotions
    ("betrayed: 7\namused: 0\ngrateful: 0\nhurt: 8", False),  # names must match exactly
    ("Betrayed: 7\nAmused: 0\nGrateful: 0\nHurt: 8\nBetrayed: 6\nAmused: 0\nGrateful: 0\nHurt: 8", False),
    ("Betrayed:7\nAmused: 0\nGrateful: 0\nHurt: 8", False),  # the rule needs whitespace after the colon
    ("no scores", False),
])
def test_parse_rule(reply, ok):
    task = _task()
    sample = next(iter(task.load_samples()))
    parsed = task.parse(reply, sample)
    assert (parsed is not None) == ok
    if ok:
        assert parsed == {"Betrayed": 7, "Amused": 0, "Grateful": int("Grateful: 1" in reply), "Hurt": 8}


def _records(scores_and_outcomes):
    return [{"sample_id": str(i), "score": s, "outcome": o, "parsed": None, "target": None, "metadata": {}}
            for i, (s, o) in enumerate(scores_and_outcomes)]


def test_benchmark_score_excludes_unparseable_and_flags_failure():
    task = _task()
    ok = _records([(10.0, "correct")] * 5 + [(4.0, "incorrect")] + [(0.0, "unparseable")])
    metrics, details = task.aggregate(ok)
    assert metrics["eqbench_score"].value == pytest.approx(100 * 54 / (6 * 10))
    assert details["failed"] is False and details["parseable_fraction"] == pytest.approx(6 / 7)
    bad = _records([(10.0, "correct")] * 5 + [(0.0, "unparseable")] * 2)  # 71% parse
    metrics, details = task.aggregate(bad)
    assert details["failed"] is True and "FAILED" in details["note"]
    assert task.is_correct(5.0) and not task.is_correct(4.99)


def test_real_question_file_loads_171_items():
    path = shared_dataset("eqbench", "eq_bench_v2_questions_171.json")
    samples = list(_task(path.parent).load_samples())
    assert len(samples) == 171 == _task().size
    assert all(len(s.target) == 4 and all(0 <= v <= 10 for v in s.target.values()) for s in samples)


@pytest.mark.parametrize("edit, message", [
    (lambda q: q["2"].pop("reference_answer_fullscale"), "missing field(s) 'reference_answer_fullscale'"),
    (lambda q: q["2"]["reference_answer_fullscale"].update(emotion1_score="high"), "is not an integer"),
])
def test_malformed_question_names_file_and_line(tmp_path, edit, message):
    questions = json.loads((FIX / "eq_bench_v2_questions_171.json").read_text())
    edit(questions)
    (tmp_path / "eq_bench_v2_questions_171.json").write_text(json.dumps(questions, indent=2))
    with pytest.raises(DataError) as err:
        list(_task(tmp_path).load_samples())
    assert message in str(err.value) and err.value.path.endswith("eq_bench_v2_questions_171.json")
    assert err.value.line is not None and err.value.line > 1


def test_missing_question_file_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match="github.com/EQ-bench"):
        list(_task(tmp_path).load_samples())


def _reference_answer(messages):
    """A loopback model that gives the fixture's reference intensities."""
    refs = {s.metadata["emotions"][0]: s.target for s in _task().load_samples()}
    text = messages[-1]["content"]
    for first, target in refs.items():
        if f"{first}: <score>" in text:
            return "\n".join(f"{k}: {v}" for k, v in target.items())
    return "?"


def test_run_end_to_end_scores_100_for_the_reference(make_server, tmp_path):
    server = make_server(answer_fn=_reference_answer)
    out = tmp_path / "run"
    assert main(["run", "--model", "openai/loopback", "--base-url", server.base_url, "--tasks", "eqbench",
                 "--data-dir", str(FIX), "--limit", "3", "-o", str(out), "-q"]) == 0
    entry = json.loads((out / "results.json").read_text())["results"][0]
    assert entry["primary_metric"] == "eqbench_score"
    assert entry["metrics"]["eqbench_score"]["value"] == pytest.approx(100.0)
    assert entry["details"]["failed"] is False and entry["outcomes"]["correct"] == 3


def test_run_with_unparseable_replies_is_flagged_failed(make_server, tmp_path):
    server = make_server(answer_fn=lambda m: "They would feel sad.")
    out = tmp_path / "run"
    assert main(["run", "--model", "openai/loopback", "--base-url", server.base_url, "--tasks", "eqbench",
                 "--data-dir", str(FIX), "-o", str(out), "-q"]) == 0
    entry = json.loads((out / "results.json").read_text())["results"][0]
    assert entry["details"]["failed"] is True and entry["n_unparseable"] == 3


def test_random_baseline_scores_about_zero(tmp_path):
    path = shared_dataset("eqbench", "eq_bench_v2_questions_171.json")
    out = tmp_path / "run"
    assert main(["run", "--model", "random", "--tasks", "eqbench", "--data-dir", str(path.parent), "-o", str(out),
                 "-q", "--no-cache"]) == 0
    m = json.loads((out / "results.json").read_text())["results"][0]["metrics"]["eqbench_score"]
    assert m["ci_low"] <= 0 <= m["ci_high"]

