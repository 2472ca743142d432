"""One scoring path: `score_replies` decides parsed/score/outcome and how strictly the answer was read,
for the runner, the refine variant, rescore and import alike."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import run_with_client
from emobench.runner import answer_sample
from emobench.scoring import score_replies
from emobench.task import ChoiceTask, Task, strict_score
from emobench.types import Sample
from emobench.variants import make_variant

PACKAGE = Path(__file__).resolve().parent.parent / "emobench"
SAMPLE = Sample("s1", "Her dog died this morning.", 1, ["Joy", "Sadness", "Anger"])


class Feelings(ChoiceTask):
    name = "toy_scoring"
    template = "{{ input }}\n{{ lettered_choices }}"

    def load_samples(self, split="test"):
        return [SAMPLE]


class Free(Task):
    name = "toy_free"
    template = "{{ input }}"

    def parse(self, text, sample):
        return text.strip() or None


class BrokenScore(Feelings):
    def score(self, parsed, sample):
        raise ValueError("no score")


@pytest.mark.parametrize(
    "reply, outcome, strict",
    [
        ('{"answer": "B"}', "correct", True),
        ("Answer: A", "incorrect", True),
        ("the answer is probably B because she is crying", "correct", False),
        ("A) Joy B) Sadness", "unparseable", False),
    ],
)
def test_outcome_and_strictness_of_one_reply(reply, outcome, strict):
    scored = score_replies(Feelings(), SAMPLE, [reply])
    assert (scored.outcome, scored.strict) == (outcome, strict)
    assert scored.score == (1.0 if outcome == "correct" else 0.0)


def test_draws_are_voted_and_strict_only_if_the_strict_draws_agree():
    task = Feelings()
    voted = score_replies(task, SAMPLE, ['{"answer": "B"}', "I'd say sadness", '{"answer": "B"}'])
    assert voted.parsed == 1 and voted.strict is True
    guessed = score_replies(task, SAMPLE, ['{"answer": "A"}', "I'd say sadness", "sadness, surely"])
    assert guessed.parsed == 1 and guessed.outcome == "correct" and guessed.strict is False


def test_a_failing_scorer_makes_the_sample_unparseable_with_its_error():
    scored = score_replies(BrokenScore(), SAMPLE, ['{"answer": "B"}'])
    assert scored.outcome == "unparseable" and scored.score == 0.0 and "no score" in scored.error


def test_a_task_without_a_strict_reading_records_none():
    scored = score_replies(Free(), Sample("f", "x", "joy"), ["joy"])
    assert scored.outcome == "correct" and scored.strict is None
    assert "strict_parse" not in scored.annotate({"category": "c"})


def test_choice_accuracy_reports_the_strict_reading_beside_the_lenient_one():
    task = Feelings()
    replies = ['{"answer": "B"}', "Answer: B", "probably sadness", "she feels sadness", "A) Joy B) Sadness"]
    records = []
    for reply in replies:
        s = score_replies(task, SAMPLE, [reply])
        records.append({"score": s.score, "parsed": s.parsed, "target": 1, "metadata": s.annotate({})})
    metrics, _ = task.aggregate(records)
    assert metrics["accuracy"].value == pytest.approx(4 / 5)
    strict = metrics["strict_accuracy"]
    assert strict.value == pytest.approx(2 / 5) and strict.n == 5 and strict.ci_low < 0.4 < strict.ci_high
    assert [strict_score(r) for r in records] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert "strict_accuracy" not in task.aggregate([{**r, "metadata": {}} for r in records])[0]


def test_the_runner_records_how_the_answer_was_read(make_server):
    srv = make_server(answer_fn=lambda messages: "Hmm. The answer is probably B, she is crying.")
    task = Feelings()
    record = run_with_client(srv, lambda c: answer_sample(task, make_variant("direct"), SAMPLE, c))
    assert record.outcome == "correct" and record.metadata["strict_parse"] is False


def test_no_module_but_the_commands_imports_the_runner():
    """The runner sits at the top: scoring, rescore and the variants must not reach back into it."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "commands" in path.relative_to(PACKAGE).parts or path.name == "runner.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "runner":
                offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_tasks_that_average_their_own_way_keep_the_strict_reading(tmp_path):
    """vignettes computes its headline over keyword-free items and EmoBench EU has its own parser: both
    still report strict accuracy (a JSON reply is read strictly by EU's parser)."""
    from emobench.cli import main
    from emobench.registry import make_task

    out = tmp_path / "run"
    assert (
        main(["run", "--model", "random", "--tasks", "vignettes", "--limit", "12", "-o", str(out), "-q"]) == 0
    )
    import json

    metrics = json.loads((out / "results.json").read_text())["results"][0]["metrics"]
    assert metrics["strict_accuracy"]["n"] == metrics["accuracy"]["n"]
    eu = make_task("emobench_eu", {})
    sample = Sample(
        "x", "s", target={"emotion": 0, "cause": 1}, choices=["a", "b"], metadata={"causes": ["c", "d"]}
    )
    assert score_replies(eu, sample, ['{"answer_q1": "A", "answer_q2": "B"}']).strict is True
