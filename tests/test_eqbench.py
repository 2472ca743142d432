"""EQ-Bench v2: the item formula, the parse rule, the prompt without revision, the benchmark score
with its parseable-fraction failure flag, loaders, and a loopback run end to end."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from collections import Counter

import pytest

from emobench.cache import ResponseCache
from emobench.cli import main
from emobench.client import ModelClient
from emobench.errors import ConfigError, DataError
from emobench.models.base import Backend
from emobench.registry import make_task
from emobench.types import ChatRequest, Completion, Usage
from emobench.variants.base import ask
from tests.conftest import FIXTURES, shared_dataset

FIX = FIXTURES / "eqbench"


def _task(data_dir=FIX):
    return make_task("eqbench", {}, str(data_dir))


def _module():
    import sys

    _task()
    return sys.modules["emobench_tasks.eqbench.task"]


@pytest.mark.parametrize(
    "d, expected",
    [
        (0, 0.0),
        (1, 6.5 / (1 + math.exp(3.6))),
        (4, 3.25),
        (5, 6.5 / (1 + math.exp(-1.2))),
        (6, 6.0),
        (10, 10.0),
    ],
)
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


@pytest.mark.parametrize(
    "reply, ok",
    [
        ("Betrayed: 7\nAmused: 0\nGrateful: 0\nHurt: 8", True),
        ("Sure!\nHurt: 8\nBetrayed: 7\nGrateful: 1\nAmused: 0\n", True),
        ("Betrayed: 7\nAmused: 0\nHurt: 8", False),  # three pairs
        ("Betrayed: 7\nAmused: 0\nGrateful: 0\nAngry: 8", False),  # not the reference emotions
        ("betrayed: 7\namused: 0\ngrateful: 0\nhurt: 8", False),  # names must match exactly
        # a restated block: a repeated name keeps its last value (upstream's dict(findall)), so it parses
        ("Betrayed: 6\nAmused: 0\nGrateful: 0\nHurt: 8\nBetrayed: 7\nAmused: 0\nGrateful: 0\nHurt: 8", True),
        ("Betrayed: 0\nAmused: 0\nGrateful: 0\nHurt: 0", False),  # an all-zero reply is unparseable
        ("Betrayed: 7\nAmused: 0\nGrateful: 0\nHurt: 8\nAngry: 2", False),  # five names
        ("Betrayed:7\nAmused: 0\nGrateful: 0\nHurt: 8", False),  # the rule needs whitespace after the colon
        ("no scores", False),
    ],
)
def test_parse_rule(reply, ok):
    task = _task()
    sample = next(iter(task.load_samples()))
    parsed = task.parse(reply, sample)
    assert (parsed is not None) == ok
    if ok:
        assert parsed == {"Betrayed": 7, "Amused": 0, "Grateful": int("Grateful: 1" in reply), "Hurt": 8}


def upstream_reading(text: str, reference: dict[str, int]) -> dict[str, int] | None:
    """EQ-Bench v2 (lib/scoring.py at the v2 release 2f6eab4, revision off), written from its
    semantics: `dict(re.findall(r'(\\w+):\\s+(\\d+)', text))`, then `calculate_score` (v1, which
    decides whether an item parsed) refuses anything but 4 entries all naming a reference emotion
    (exact case) and a score total <= 0."""
    user = dict(re.findall(r"(\w+):\s+(\d+)", text))
    if len(user) != 4:
        return None
    if len({name for name in user for ref_name in reference if name == ref_name}) != 4:
        return None
    if sum(float(v) for v in user.values()) <= 0:
        return None
    return {name: int(v) for name, v in user.items()}


def _generated_replies(names: list[str], n: int, seed: int = 11) -> list[str]:
    """The four names in random order with random scores, then slips: a name repeated (often with
    another score), a stranger, a name left out, odd spacing or markup, lower case, all zeros."""
    rng = random.Random(seed)
    formats = ["{}: {}"] * 6 + ["{}:  {}", "{}:{}", "{} : {}", "**{}**: {}", "{}: {}/10", "- {}: {}"]
    replies = []
    for _ in range(n):
        lines = [(name, rng.choice([0, 0, 1, 5, 10, 12])) for name in rng.sample(names, 4)]
        for _ in range(rng.choice([0, 0, 1, 2])):
            slip = rng.choice(["repeat", "stranger", "drop", "lower", "zeros"])
            if slip == "repeat":
                lines.append((rng.choice(names), rng.choice([0, 3, 9])))
            elif slip == "stranger":
                lines.insert(rng.randrange(len(lines) + 1), (rng.choice(["Angry", "Sad", "Hurt_2"]), 4))
            elif slip == "drop" and lines:
                lines.pop(rng.randrange(len(lines)))
            elif slip == "lower" and lines:
                i = rng.randrange(len(lines))
                lines[i] = (lines[i][0].lower(), lines[i][1])
            elif slip == "zeros":
                lines = [(name, 0) for name, _ in lines]
        text = "\n".join(rng.choice(formats).format(name, score) for name, score in lines)
        replies.append(rng.choice(["", "Sure.\n", "First pass scores:\n"]) + text)
    return replies


def test_parse_matches_upstream_on_generated_replies():
    task = _task()
    sample = next(iter(task.load_samples()))
    replies = _generated_replies(list(sample.target), 3000)
    readable = 0
    for reply in replies:
        expected = upstream_reading(reply, sample.target)
        assert task.parse(reply, sample) == expected, reply
        readable += expected is not None
    assert 100 < readable < 2900  # the set exercises both outcomes


def test_every_answer_the_baselines_draw_is_parseable():
    task = _task()
    sample = next(iter(task.load_samples()))
    space = task.answer_space(sample)
    assert len(space) == 11**4 - 1
    assert all(task.parse(task.format_answer(a, sample), sample) == a for a in space)


def _records(scores_and_outcomes):
    return [
        {"sample_id": str(i), "score": s, "outcome": o, "parsed": None, "target": None, "metadata": {}}
        for i, (s, o) in enumerate(scores_and_outcomes)
    ]


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


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda q: q["2"].pop("reference_answer_fullscale"), "missing field(s) 'reference_answer_fullscale'"),
        (lambda q: q["2"]["reference_answer_fullscale"].update(emotion1_score="high"), "is not an integer"),
    ],
)
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
    assert (
        main(
            [
                "run",
                "--model",
                "openai/loopback",
                "--base-url",
                server.base_url,
                "--tasks",
                "eqbench",
                "--data-dir",
                str(FIX),
                "--limit",
                "3",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    entry = json.loads((out / "results.json").read_text())["results"][0]
    assert entry["primary_metric"] == "eqbench_score"
    assert entry["metrics"]["eqbench_score"]["value"] == pytest.approx(100.0)
    assert entry["details"]["failed"] is False and entry["outcomes"]["correct"] == 3


def test_run_with_unparseable_replies_is_flagged_failed(make_server, tmp_path):
    server = make_server(answer_fn=lambda m: "They would feel sad.")
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--model",
                "openai/loopback",
                "--base-url",
                server.base_url,
                "--tasks",
                "eqbench",
                "--data-dir",
                str(FIX),
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    entry = json.loads((out / "results.json").read_text())["results"][0]
    assert entry["details"]["failed"] is True and entry["n_unparseable"] == 3


def test_random_baseline_scores_about_zero(tmp_path):
    path = shared_dataset("eqbench", "eq_bench_v2_questions_171.json")
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--model",
                "random",
                "--tasks",
                "eqbench",
                "--data-dir",
                str(path.parent),
                "-o",
                str(out),
                "-q",
                "--no-cache",
            ]
        )
        == 0
    )
    m = json.loads((out / "results.json").read_text())["results"][0]["metrics"]["eqbench_score"]
    assert m["ci_low"] <= 0 <= m["ci_high"]


def _questions_text(pairs: list[tuple[str, dict]]) -> str:
    """A question file written by hand, so that a key can appear twice (json.dumps cannot)."""
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "\n}\n"


def test_a_repeated_question_id_names_file_and_line(tmp_path):
    """JSON keeps only the last of two equal keys: a repeated id would silently drop an item."""
    questions = list(json.loads((FIX / "eq_bench_v2_questions_171.json").read_text()).items())
    (tmp_path / "eq_bench_v2_questions_171.json").write_text(_questions_text([*questions, questions[0]]))
    with pytest.raises(DataError, match="duplicate id '1'") as err:
        list(_task(tmp_path).load_samples())
    assert err.value.line == len(questions) + 2


# ---- re-asking unparseable items ----------------------------------------------------------------
class ScriptedBackend(Backend):
    """A local backend: unparseable replies for the first `bad` calls of each prompt, then the
    fixture's reference answer; it records the temperature of every call."""

    kind = "scripted"

    def __init__(self, bad: int):
        super().__init__("scripted")
        self.bad, self.temperatures, self.seen = bad, [], Counter()

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        out = []
        for request in requests:
            self.temperatures.append(request.params.temperature)
            prompt = request.messages[-1]["content"]
            self.seen[prompt] += 1
            out.append(
                Completion(
                    "I am not sure."
                    if self.seen[prompt] <= self.bad
                    else _reference_answer(list(request.messages))
                )
            )
        return out


def _ask(task, backend, cache=None, **overrides):
    sample = next(iter(task.load_samples()))
    client = ModelClient(backend, cache, gen_overrides=overrides)
    usage = Usage()
    out = asyncio.run(ask(task, sample, task.render(sample), client, usage))
    return sample, out, usage


def test_reask_raises_the_temperature_by_the_step_until_the_reply_parses(tmp_path):
    task = make_task("eqbench", {"reask": "3"}, str(FIX))
    backend = ScriptedBackend(bad=2)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    sample, out, usage = _ask(task, backend, cache)
    assert backend.temperatures == pytest.approx([0.01, 0.16, 0.31])
    assert task.parse(out.responses[0], sample) == sample.target and usage.calls == 3
    attempts = out.trace["reask"][0]["attempts"]
    assert [a["temperature"] for a in attempts] == pytest.approx([0.01, 0.16, 0.31])
    assert [a["parsed"] for a in attempts] == [False, False, True] and attempts[0][
        "reply"
    ] == "I am not sure."
    again = ScriptedBackend(bad=2)  # every attempt was cached: asking again calls nothing
    _, out2, usage2 = _ask(task, again, cache)
    assert again.temperatures == [] and usage2.cached_calls == 3 and out2.responses == out.responses


def test_reask_gives_up_after_n_and_is_off_by_default():
    sample, out, usage = _ask(make_task("eqbench", {"reask": 2}, str(FIX)), ScriptedBackend(bad=5))
    assert usage.calls == 3 and _task().parse(out.responses[0], sample) is None
    assert [a["parsed"] for a in out.trace["reask"][0]["attempts"]] == [False, False, False]
    backend = ScriptedBackend(bad=5)
    _, out, usage = _ask(_task(), backend)
    assert usage.calls == 1 and backend.temperatures == [0.01] and "reask" not in out.trace


def test_reask_refuses_a_fixed_temperature_override():
    """--temperature would overwrite every raised temperature: the re-asks would be the same request."""
    with pytest.raises(ConfigError, match="--temperature"):
        _ask(make_task("eqbench", {"reask": 2}, str(FIX)), ScriptedBackend(bad=1), temperature=0.5)


def test_run_with_reask_and_temperature_stops_with_one_line(server, tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "--model",
                "openai/loopback",
                "--base-url",
                server.base_url,
                "--tasks",
                "eqbench",
                "--data-dir",
                str(FIX),
                "--task-arg",
                "reask=2",
                "--temperature",
                "0.5",
                "-q",
                "-o",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--temperature" in err and "Traceback" not in err and server.state.snapshot()["requests"] == 0


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_reask_must_be_a_count(value):
    with pytest.raises(ConfigError, match="reask"):
        make_task("eqbench", {"reask": value}, str(FIX))


def test_run_with_reask_recovers_items_and_resumes_from_the_cache(make_server, tmp_path):
    asked: Counter = Counter()

    def first_reply_unreadable(messages):
        asked[messages[-1]["content"]] += 1
        return "They would feel sad." if asked[messages[-1]["content"]] == 1 else _reference_answer(messages)

    server = make_server(answer_fn=first_reply_unreadable)
    args = [
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        server.base_url,
        "--tasks",
        "eqbench",
        "--data-dir",
        str(FIX),
        "--task-arg",
        "reask=2",
        "-q",
    ]
    assert main([*args, "-o", str(tmp_path / "run")]) == 0
    entry = json.loads((tmp_path / "run" / "results.json").read_text())["results"][0]
    assert entry["metrics"]["eqbench_score"]["value"] == pytest.approx(100.0) and entry["n_unparseable"] == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert all(r["calls"] == 2 and len(r["metadata"]["trace"]["reask"][0]["attempts"]) == 2 for r in records)
    assert server.state.snapshot()["requests"] == 6
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())["manifest"]
    assert manifest["tasks"]["eqbench"]["args"]["reask"] == 2
    assert main([*args, "-o", str(tmp_path / "again")]) == 0  # same requests: all from the cache
    assert server.state.snapshot()["requests"] == 6
