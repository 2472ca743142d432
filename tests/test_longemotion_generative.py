"""LongEmotion MC, ES and EE (tasks/longemotion/generative.py): loaders on fixtures and on the real
shared files, the evaluation points, the ES reply reader, PANAS ratings and scoring, end-to-end runs
with the loopback server as model and judge (direct, rag, coem) and with the embedded model as the
model under test, and the leaderboard's LongEmotion Overall."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from conftest import FIXTURES, ROOT, has_embedded_model, shared_dataset
from emobench.errors import ConfigError, DataError
from emobench.leaderboard.collect import collect
from emobench.leaderboard.config import load_config
from emobench.manifest import RunConfig
from emobench.registry import make_task
from emobench.runner import run
from tasks.longemotion.generative import evaluation_points, panas_ratings, panas_scores

DATA = str(FIXTURES / "longemotion")
PANAS = [
    "Interested", "Distressed", "Excited", "Upset", "Strong", "Guilty", "Scared", "Hostile", "Enthusiastic",
    "Proud", "Irritable", "Alert", "Ashamed", "Inspired", "Nervous", "Determined", "Attentive", "Jittery",
    "Active", "Afraid",
]  # fmt: skip


def test_mc_evaluation_points_are_the_quarters_of_the_client_turns():
    assert evaluation_points(12) == [3, 6, 9]
    assert evaluation_points(3) == [0, 1, 2]
    assert evaluation_points(2) == [0, 1]  # floor(2/4) = 0 and floor(6/4) = 1 coincide with others
    assert evaluation_points(0) == []


def test_mc_samples_hold_the_session_up_to_the_client_turn():
    task = make_task("longemotion_mc", {}, DATA)
    samples = list(task.load_samples())
    # fixture: dialogue 1 stage 4 has 4 client turns -> points 1, 2, 3; dialogue 2 has 4 -> 1, 2, 3
    assert [s.id for s in samples] == ["1/s4/c1", "1/s4/c2", "1/s4/c3", "2/s4/c1", "2/s4/c2", "2/s4/c3"]
    first = samples[0]
    assert first.context.startswith("Client: Hello. My partner said")  # earlier stages included
    assert first.context.endswith("Client: Lighter. I still worry, but it doesn't run my nights.")
    assert (
        first.metadata["recent"].count("\n") == 2 and task.retrieval_query(first) == first.metadata["recent"]
    )
    assert task.rubric(first).name == "longemotion_mc/stage4"
    every = list(make_task("longemotion_mc", {"stages": "all"}, DATA).load_samples())
    assert {s.metadata["stage"] for s in every} == {1, 2, 3, 4}
    assert [s.metadata["stage"] for s in make_task("longemotion_mc", {"stages": "1,2"}, DATA).load_samples()][
        0
    ] == 1
    with pytest.raises(ConfigError, match="stages="):
        make_task("longemotion_mc", {"stages": "5"}, DATA)


def test_a_malformed_dialogue_names_its_file_and_line(tmp_path):
    good = (FIXTURES / "longemotion" / "Emotion_Conversations.jsonl").read_text().splitlines()[0]
    bad = json.dumps(
        {"id": 9, "stages": [{"stage": "x", "conversations": [{"role": "Therapist", "context": "hi"}]}]}
    )
    (tmp_path / "Emotion_Conversations.jsonl").write_text(good + "\n" + bad + "\n")
    with pytest.raises(DataError, match=r"Emotion_Conversations.jsonl:2: stage 1: each turn needs role"):
        list(make_task("longemotion_mc", {}, str(tmp_path)).load_samples())


def test_es_reads_the_five_fields_or_passes_the_raw_reply_to_the_judge():
    task = make_task("longemotion_es", {}, DATA)
    sample = next(iter(task.load_samples()))
    assert sample.context.startswith("Case description:\nClient, female, 29")
    assert set(sample.target) == {
        "causes",
        "symptoms",
        "treatment_process",
        "characteristics_of_illness",
        "treatment_effect",
    }
    reply = 'Here:\n```json\n{"Causes": "fear", "symptoms": "headaches"}\n```'
    assert task.parse(reply, sample) == {
        "causes": "fear", "symptoms": "headaches", "treatment_process": "", "characteristics_of_illness": "",
        "treatment_effect": "",
    }  # fmt: skip
    assert task.parse("She was afraid of criticism.", sample) == "She was afraid of criticism."
    assert task.parse("   ", sample) is None
    assert (
        "Causes: fear\nSymptoms: headaches"
        in task.judge_variables(sample, task.parse(reply, sample))["reply_text"]
    )


def test_panas_ratings_and_the_questionnaires_own_scoring():
    text = "\n".join(f"**{item}**: {1 + i % 5} - because" for i, item in enumerate(PANAS))
    ratings = panas_ratings(text, PANAS)
    assert ratings == {item: 1 + i % 5 for i, item in enumerate(PANAS)}
    assert panas_ratings(text.replace("Jittery", "Jumpy"), PANAS) is None  # every item or nothing
    assert panas_ratings("Interested (4)\nDistressed - 2", PANAS[:2]) == {"Interested": 4, "Distressed": 2}
    task = make_task("longemotion_ee", {}, DATA)
    q = next(iter(task.load_samples())).metadata["questionnaire"]
    positive = [1, 3, 5, 9, 10, 12, 14, 16, 17, 19]  # PANAS positive-affect items (Watson et al. 1988)
    expected_pa = sum(1 + (n - 1) % 5 for n in positive)
    expected_na = sum(1 + (n - 1) % 5 for n in range(1, 21) if n not in positive)
    assert panas_scores(ratings, q) == {"Positive Affect": expected_pa, "Negative Affect": expected_na}
    reversed_q = {**q, "reverse": [1]}  # a reverse item counts as scale - rating
    assert panas_scores(ratings, reversed_q)["Positive Affect"] == expected_pa - 1 + (6 - 1)


def test_ee_is_a_six_turn_chat_per_situation():
    task = make_task("longemotion_ee", {}, DATA)
    samples = list(task.load_samples())
    assert [s.id for s in samples] == ["Anger-f0-s0", "Anger-f0-s1", "Fear-f0-s0"]
    prompt = task.render(samples[0])[-1]["content"]
    assert "dead" in prompt and "Interested: <rating 1-5>" in prompt and "Afraid: <rating 1-5>" in prompt
    assert len(task.followups(samples[0])) == 5
    assert task.parse("not json", samples[0]) is None
    parsed = task.parse(json.dumps(["Interested: 2", "a", "b", "c", "d", "e"]), samples[0])
    assert parsed["ratings"] is None and parsed["replies"][5] == "e"


# ---- the real files --------------------------------------------------------------------------------------


def test_the_real_conversation_and_expression_files_load():
    folder = str(shared_dataset("longemotion", "Emotion_Conversations.jsonl").parent)
    shared_dataset("longemotion", "Emotion_Expression_Situations.json")
    mc = list(make_task("longemotion_mc", {}, folder).load_samples())
    assert len(mc) == 300 and len({s.metadata["dialogue"] for s in mc}) == 100
    assert len(list(make_task("longemotion_mc", {"stages": "all"}, folder).load_samples())) == 1200
    ee = list(make_task("longemotion_ee", {}, folder).load_samples())
    assert len(ee) == 428 and len({s.metadata["emotion"] for s in ee}) == 8
    assert ee[0].metadata["questionnaire"]["items"][:2] == ["Interested", "Distressed"]


# ---- end to end ----------------------------------------------------------------------------------------------


def _run(tmp_path, task, model="openai/model-x", base_url=None, judges=("openai/judge-a",), **kw):
    config = RunConfig(
        model=model,
        base_url=base_url,
        tasks=task,
        data_dir=DATA,
        judges=list(judges),
        output=str(tmp_path / f"{task}-{kw.get('variants', ['direct'])[0]}"),
        **kw,
    )
    return asyncio.run(run(config))


@pytest.mark.parametrize(
    "task, metric, model_calls, low, high",
    [
        ("longemotion_mc", "mc_score", 1, 0, 5),
        ("longemotion_es", "es_score", 1, 1, 5),
        ("longemotion_ee", "ee_score", 6, 0, 100),
    ],
)
def test_each_task_end_to_end_on_the_loopback_server_as_model_and_two_judges(
    server, tmp_path, task, metric, model_calls, low, high
):
    _, results = _run(tmp_path, task, base_url=server.base_url, judges=["openai/judge-a", "openai/judge-b"])
    entry = results["results"][0]
    n = entry["n_samples"]
    assert server.state.requests == n * (model_calls + 2)  # per sample: the model's calls + one per judge
    assert entry["usage"]["calls_per_sample"] == model_calls
    assert low <= entry["metrics"][metric]["value"] <= high and entry["metrics"][metric]["n"] == n
    assert entry["judge"]["n_judge_unparseable"] == 0 and len(entry["judge"]["judges"]) == 2
    assert entry["details"]["criteria"]
    if task == "longemotion_ee":
        assert entry["metrics"]["panas_readable"]["value"] == 1.0  # the loopback rates every item
        assert 10 <= entry["metrics"]["panas_positive_affect"]["value"] <= 50


@pytest.mark.parametrize("variant", ["rag", "coem"])
@pytest.mark.parametrize("task", ["longemotion_mc", "longemotion_es", "longemotion_ee"])
def test_rag_and_coem_keep_working_on_the_judged_tasks(server, tmp_path, task, variant):
    run_dir, results = _run(tmp_path, task, base_url=server.base_url, variants=[variant], limit=2)
    entry = results["results"][0]
    assert entry["n_errors"] == 0 and entry["judge"]["n_judge_unparseable"] == 0
    trace = json.loads((run_dir / "samples.jsonl").read_text().splitlines()[0])["metadata"]["trace"]
    if task == "longemotion_mc":  # LongEmotion's MC query: the last three utterances
        query = trace[variant]["query"]
        assert query.count("\n") == 2 and query.endswith(
            "Client: Lighter. I still worry, but it doesn't run my nights."
        )
    if task == "longemotion_ee":  # no document to retrieve from: asked as written, noted in the trace
        assert trace[variant] == "no context to retrieve from" and trace["turns"] == 6


@pytest.mark.slow
@pytest.mark.skipif(not has_embedded_model(), reason="embedded model (llama-cpp-python + GGUF) not installed")
def test_the_three_tasks_with_the_embedded_model_under_test(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # the judge's server (the model is in-process)
    timings = {}
    for task in ("longemotion_mc", "longemotion_es", "longemotion_ee"):
        start = time.perf_counter()
        _, results = _run(tmp_path, task, model="smollm2", limit=1, max_tokens=8)
        timings[task] = time.perf_counter() - start
        entry = results["results"][0]
        assert entry["n_errors"] == 0 and entry["n_samples"] == 1
        assert entry["judge"]["judges"][0]["usage"]["calls"] == 1
    with capsys.disabled():
        print("EMBEDDED_JUDGED " + " ".join(f"{t}={s:.1f}s" for t, s in timings.items()))


def test_the_longemotion_overall_is_the_project_pages_formula(tmp_path):
    """Overall = mean(EC, ED, QA, 20 MC-4, 20 ES, EE); checked on GPT-4o's row of the project page
    (50.09, 19.12, 50.12, 4.60, 3.77, 81.03 -> 61.29)."""
    scores = {
        "longemotion_ec": ("accuracy", 0.5009),
        "longemotion_ed": ("accuracy", 0.1912),
        "longemotion_qa": ("f1", 0.5012),
        "longemotion_mc": ("mc_score", 4.60),
        "longemotion_es": ("es_score", 3.77),
        "longemotion_ee": ("ee_score", 81.03),
    }
    results = {
        "schema_version": 1,
        "manifest": {"model": {"spec": "openai/gpt-4o"}, "tasks": {t: {"n": 10} for t in scores}},
        "run": {"started": "2026-01-01T00:00:00Z"},
        "results": [
            {
                "task": t,
                "variant": "direct",
                "primary_metric": m,
                "metrics": {m: {"value": v, "ci_low": v, "ci_high": v, "n": 10}},
                "n_samples": 10,
                "n_errors": 0,
            }
            for t, (m, v) in scores.items()
        ],
    }
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(results))
    config = load_config(ROOT / "leaderboards" / "longemotion.yaml")
    board = collect(config, [str(tmp_path / "run")])
    assert board.models[0].overall == pytest.approx(61.29, abs=0.005)
    assert "20 x MC-4" in config.aggregation
    bad = tmp_path / "bad.yaml"
    bad.write_text("aggregate: {method: longemotion_overall}\ntasks: [longemotion_ec]\n")
    with pytest.raises(ConfigError, match="exactly the six LongEmotion tasks"):
        load_config(bad)
