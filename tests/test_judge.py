"""LLM judges (emobench/judge.py, emobench/agreement.py, emobench/judged.py): verdict parsing, the
agreement coefficients against published worked examples, a panel of two loopback judges with planted
disagreement, judge replies that cannot be read, resume without repeated judge calls, rescoring from the
recorded verdicts, `compare` refusing another judge, task files with a rubric, and `judge-check`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from emobench.agreement import icc2k, krippendorff_alpha
from emobench.cli import main
from emobench.compare import compare
from emobench.errors import ConfigError
from emobench.judge import Criterion, Rubric, parse_verdict
from emobench.judge_check import QUALITY, read_set, shipped_sets
from emobench.manifest import RunConfig
from emobench.registry import make_task
from emobench.rescore import rescore_run
from emobench.runner import run
from emobench.testing.server import SCORE_SLOT, prompt_hash
from reliability_support import ServerProcess

RUBRIC = Rubric(
    "t", (Criterion("empathy", "Empathy"), Criterion("clarity", "Clarity")), 1, 5, "judges/generic.j2"
)
NESTED = Rubric(
    "n", (Criterion("a", "A"), Criterion("b", "B")), 0, 5, "judges/generic.j2", aspects=("x", "y")
)

# ---- reading a verdict -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"empathy": 4, "clarity": 5}', {"empathy": 4.0, "clarity": 5.0}),
        ('Sure.\n```json\n{"Empathy": "3", "CLARITY": "4/5"}\n```', {"empathy": 3.0, "clarity": 4.0}),
        (
            '<think>{"empathy": 1}</think>{"empathy": 2, "clarity": 2, "comment": "ok"}',
            {"empathy": 2.0, "clarity": 2.0},
        ),
        ('{"empathy": 4}', None),  # a criterion missing: never averaged over fewer
        ('{"empathy": 6, "clarity": 5}', None),  # out of the scale
        ('{"empathy": true, "clarity": 5}', None),
        ("I would give it a four.", None),
        ("", None),
    ],
)
def test_parse_verdict_reads_every_criterion_or_nothing(reply, expected):
    assert parse_verdict(reply, RUBRIC) == expected


def test_parse_verdict_with_aspects_reads_nested_objects():
    reply = '{"x": {"a": 1, "b": 2}, "y": {"a": 3, "b": 4}}'
    assert parse_verdict(reply, NESTED) == {"x.a": 1.0, "x.b": 2.0, "y.a": 3.0, "y.b": 4.0}
    assert parse_verdict('{"x": {"a": 1, "b": 2}}', NESTED) is None


def test_the_reply_format_has_one_slot_per_criterion():
    assert len(SCORE_SLOT.findall(RUBRIC.reply_format())) == 2
    assert len(SCORE_SLOT.findall(NESTED.reply_format())) == 4
    filled = SCORE_SLOT.sub("3", NESTED.reply_format().strip("`").removeprefix("json"))
    assert parse_verdict(filled, NESTED) == dict.fromkeys(NESTED.keys(), 3.0)


# ---- agreement: published worked examples --------------------------------------------------------------

nan = float("nan")
# K. Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011), the 4 observers x 12 units example
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
).T  # items x judges
# P. E. Shrout and J. L. Fleiss (1979), Table 2: 6 targets x 4 judges; ICC(2,4) = .62
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
)


def test_krippendorff_alpha_reproduces_the_published_interval_value():
    assert krippendorff_alpha(KRIPPENDORFF_2011) == pytest.approx(0.849, abs=5e-4)


def test_icc2k_reproduces_shrout_and_fleiss_table_2():
    assert icc2k(SHROUT_FLEISS) == pytest.approx(0.62, abs=5e-3)
    assert np.isnan(icc2k(SHROUT_FLEISS[:1]))


def hand_alpha(a: list[float], b: list[float]) -> float:
    """Interval alpha for two judges and no missing value, from Krippendorff's definition:
    1 - (n - 1) * sum_u (a_u - b_u)^2 / (n * sum_i (v_i - mean)^2) over the n = 2N values."""
    values = np.array(a + b, dtype=float)
    n = len(values)
    return 1 - (n - 1) * np.sum((np.array(a) - np.array(b)) ** 2) / (
        n * np.sum((values - values.mean()) ** 2)
    )


# ---- a judged task file and a planted panel -----------------------------------------------------------

PLANTED_A = [1, 2, 3, 4, 5, 1, 2, 3]
PLANTED_B = [1, 3, 3, 5, 4, 2, 2, 4]


def write_judged_task(folder: Path, n: int, name: str = "support") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text(
        "".join(json.dumps({"id": f"i{k}", "text": f"item {k} planted={k}"}) + "\n" for k in range(n))
    )
    (folder / "task.yaml").write_text(
        f"name: {name}\n"
        "data: items.jsonl\n"
        "fields: {id: id, input: text}\n"
        'template: "Reply kindly to: {{ input }}"\n'
        "judge:\n"
        "  criteria: [{key: warmth, title: Warmth, description: how warm the reply is}]\n"
        "  scale: [1, 5]\n"
    )
    return folder / "task.yaml"


def planted_judge(model: str, messages: list[dict[str, str]]) -> str | None:
    """judge-a scores item k PLANTED_A[k], judge-b PLANTED_B[k]; item 6 is unreadable to judge-b, and
    item 7 to both judges."""
    k = int(re.search(r"planted=(\d+)", messages[-1]["content"]).group(1))
    if (model == "judge-b" and k == 6) or k == 7:
        return "I would rather not put a number on this."
    value = (PLANTED_A if model == "judge-a" else PLANTED_B)[k]
    return json.dumps({"warmth": value})


def judged_run(server, tmp_path, task_file, judges, out="run", **kw):
    config = RunConfig(
        model="openai/model-x",
        base_url=server.base_url,
        task_files=[str(task_file)],
        judges=judges,
        output=str(tmp_path / out),
        **kw,
    )
    return asyncio.run(run(config))


def test_a_panel_of_two_loopback_judges_with_planted_disagreement(server, tmp_path):
    server.config.judge_fn = planted_judge
    task_file = write_judged_task(tmp_path / "task", 8)
    run_dir, results = judged_run(
        server, tmp_path, task_file, ["openai/judge-a", "openai/judge-b"], tasks="support"
    )
    entry = results["results"][0]
    judge = entry["judge"]
    # items 0-5 scored by both judges; 6 by judge-a only; 7 by neither (judge-unparseable)
    a, b = PLANTED_A[:6], PLANTED_B[:6]
    alpha = judge["agreement"]["krippendorff_alpha"]
    with_six = hand_alpha(a, b)
    # item 6 is pairable for neither judge pair (one value), so alpha is over items 0-5
    assert alpha["value"] == pytest.approx(with_six, abs=1e-9)
    assert alpha["n"] == 6 and alpha["ci_low"] <= alpha["value"] <= alpha["ci_high"]
    assert judge["agreement"]["icc2k"]["n"] == 6
    by_name = {j["judge"]: j for j in judge["judges"]}
    assert by_name["openai/judge-a"]["score"]["value"] == pytest.approx(np.mean(PLANTED_A[:7]))
    assert by_name["openai/judge-b"]["n_unparseable"] == 2 and by_name["openai/judge-a"]["n_unparseable"] == 1
    assert (
        by_name["openai/judge-a"]["usage"]["calls"] == 8 and not by_name["openai/judge-a"]["self_preference"]
    )
    # the sample score is the panel mean; the judge-unparseable one is counted apart, not scored 0
    expected = [(x + y) / 2 for x, y in zip(a, b, strict=True)] + [PLANTED_A[6]]
    assert entry["metrics"]["judge_score"]["value"] == pytest.approx(np.mean(expected))
    assert entry["metrics"]["judge_score"]["n"] == 7
    assert judge["n_judge_unparseable"] == 1 and entry["n_unparseable"] == 0
    assert entry["outcomes"]["unparseable"] == 1
    assert entry["usage"]["calls"] == 8  # the model's calls; the judges' are in their own usage
    records = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    last = records[-1]
    assert last["outcome"] == "unparseable" and last["score"] is None
    assert "judge reply unreadable" in last["error"]
    trace = records[0]["metadata"]["trace"]["judge"]
    assert [j["judge"] for j in trace["judges"]] == ["openai/judge-a", "openai/judge-b"]
    assert "planted=0" in trace["judges"][0]["prompt"] and trace["judges"][0]["reply"] == '{"warmth": 1}'
    manifest = results["manifest"]["tasks"]["support"]["judge"]
    assert [j["spec"] for j in manifest["judges"]] == ["openai/judge-a", "openai/judge-b"]
    assert manifest["rubrics"]["support"]["template_hash"]


def test_rescore_reuses_the_recorded_verdicts_and_calls_no_judge(server, tmp_path):
    server.config.judge_fn = planted_judge
    task_file = write_judged_task(tmp_path / "task", 8)
    run_dir, results = judged_run(
        server, tmp_path, task_file, ["openai/judge-a", "openai/judge-b"], tasks="support"
    )
    before = server.state.requests
    rescored = rescore_run(run_dir, task_files=[str(task_file)])
    assert server.state.requests == before
    assert rescored["results"][0]["metrics"] == results["results"][0]["metrics"]
    assert rescored["results"][0]["judge"]["n_judge_unparseable"] == 1


def test_a_judged_task_needs_a_judge_and_a_judge_needs_a_judged_task(server, tmp_path):
    task_file = write_judged_task(tmp_path / "task", 2)
    with pytest.raises(ConfigError, match="scored by a judge model: pass --judge"):
        judged_run(server, tmp_path, task_file, [], tasks="support")
    with pytest.raises(ConfigError, match="none of the selected tasks is scored by a judge"):
        asyncio.run(
            run(
                RunConfig(
                    model="random",
                    tasks="vignettes",
                    limit=2,
                    judges=["openai/j"],
                    output=str(tmp_path / "v"),
                )
            )
        )


def test_a_judge_that_is_the_model_under_test_is_flagged(server, tmp_path):
    task_file = write_judged_task(tmp_path / "task", 2)
    _, results = judged_run(server, tmp_path, task_file, ["openai/model-x"], tasks="support")
    assert results["manifest"]["tasks"]["support"]["judge"]["self_preference"] == ["openai/model-x"]
    assert results["results"][0]["judge"]["judges"][0]["self_preference"] is True
    assert results["results"][0]["judge"]["agreement"] is None  # one judge: no agreement to report


def test_compare_refuses_runs_scored_by_another_judge(server, tmp_path):
    task_file = write_judged_task(tmp_path / "task", 6)
    base, _ = judged_run(server, tmp_path, task_file, ["openai/judge-a"], out="a", tasks="support")
    cand, _ = judged_run(server, tmp_path, task_file, ["openai/judge-b"], out="b", tasks="support")
    report = compare(base, cand, task_files=[str(task_file)])
    assert report["exit_code"] == 2
    assert "judge differs" in report["rows"][0]["reasons"]
    same, _ = judged_run(server, tmp_path, task_file, ["openai/judge-a"], out="c", tasks="support", seed=7)
    assert compare(base, same, task_files=[str(task_file)])["rows"][0]["status"] == "ok"


def test_a_bad_rubric_in_a_task_file_is_one_clear_error(tmp_path):
    path = write_judged_task(tmp_path / "task", 2)
    path.write_text(path.read_text().replace("scale: [1, 5]", "scale: [5, 1]"))
    with pytest.raises(ConfigError, match="scale with high > low"):
        make_task("support", {}, None, [str(path)])


# ---- kill and resume: no judge call repeated for a finished sample ------------------------------------


@pytest.mark.slow
def test_kill_and_resume_repeats_no_judge_call_for_finished_samples(tmp_path):
    n = 160
    task_file = write_judged_task(tmp_path / "task", n, name="support")
    server = ServerProcess("--latency", "0.03", "--seed", "3")
    out = tmp_path / "killed"
    env = {**os.environ, "EMOBENCH_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [
        sys.executable, "-m", "emobench.cli", "run", "--model", "openai/model-x", "--base-url", server.base_url,
        "--task-file", str(task_file), "--judge", "openai/judge-a,openai/judge-b", "-c", "4", "-q",
        "--output", str(out),
    ]  # fmt: skip
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples = out / "samples.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline and (not samples.exists() or samples.read_bytes().count(b"\n") < 20):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        finished = [json.loads(x) for x in samples.read_bytes().split(b"\n")[:-1]]
        assert 20 <= len(finished) < n, "the kill must land mid-run"
        before = Counter(server.stats()["prompt_hashes"])
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        after = Counter(server.stats()["prompt_hashes"])
    finally:
        server.stop()
    task = make_task("support", {}, None, [str(task_file)])
    samples_by_id = {s.id: s for s in task.load_samples()}
    asked_again = 0
    for rec in finished:
        sample = samples_by_id[rec["sample_id"]]
        messages = task.rubric(sample).messages(task.judge_variables(sample, rec["parsed"]))
        h = prompt_hash(messages)  # both judges send these messages (only the model name differs)
        assert before[h] == 2, "each judge was asked once before the kill"
        asked_again += after[h] - before[h]
    assert asked_again == 0, "a finished sample's judge was asked again"
    final = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(final) == n and all(r["metadata"]["trace"].get("judge") for r in final)


# ---- judge-check -----------------------------------------------------------------------------------------


def _markers() -> dict[str, int]:
    """A text of each shipped response that reaches its judge prompt verbatim -> the score a judge that
    orders the qualities rightly gives it (good 5, mediocre 4, off-topic 2, harmful 1)."""
    rank = {"good": 5, "mediocre": 4, "off_topic": 2, "harmful": 1}
    out = {}
    for path in shipped_sets():
        for item in read_set(path):
            for quality in QUALITY:
                text = item.responses[quality]
                if item.task == "longemotion_es":  # as the judge sees the five fields
                    fields = json.loads(text)
                    text = f"Causes: {fields['causes']}\nSymptoms: {fields['symptoms']}\n"
                elif item.task == "longemotion_ee":
                    text = json.loads(text)[1]
                out[text] = rank[quality]
    return out


def test_judge_check_reports_how_often_a_judge_orders_known_qualities(make_server, capsys):
    markers = _markers()

    def rightly(model, messages):
        value = next(v for text, v in markers.items() if text in messages[-1]["content"])
        value = value if model == "right" else 6 - value  # "inverted" reverses the order
        filled = SCORE_SLOT.sub(
            str(value), re.search(r"```json\s*(.*?)```", messages[-1]["content"], re.S).group(1)
        )
        return filled

    srv = make_server(judge_fn=rightly)
    code = main(
        ["judge-check", "--judge", "openai/right,openai/inverted", "--base-url", srv.base_url, "-f", "json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1  # the inverted judge fails --min-accuracy
    for task, r in report["openai/right"].items():
        assert r["pair_accuracy"]["value"] == 1.0 and r["items_fully_ordered"] == r["items"], task
        assert r["pair_accuracy"]["n"] == 6 * r["items"]
    assert all(r["pair_accuracy"]["value"] == 0.0 for r in report["openai/inverted"].values())
    assert set(report["openai/right"]) == {"longemotion_mc", "longemotion_es", "longemotion_ee"}
