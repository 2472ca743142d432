"""`emobench compare`: the CI regression gate on synthetic paired runs whose truth is known (including
the fractional-score, error and incomplete-run cases of issue 11), plus end-to-end gates on real runs
through the loopback server."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from emobench.cli import main
from emobench.compare import compare
from emobench.errors import ConfigError
from emobench.paired import binomial_two_sided, holm
from emobench.schema import SCHEMA_VERSION

N = 200
PRIMARY = {"longemotion_qa": "f1", "eqbench": "eqbench_score", "vignettes_affect": "auroc"}


def _record(task: str, sid: str, value: float | dict[str, Any]) -> dict[str, Any]:
    fields = value if isinstance(value, dict) else {"score": value}
    score = fields.get("score")
    outcome = "correct" if (score or 0) >= 0.5 else "incorrect"
    return {
        "key": f"{task}|direct|{sid}",
        "sample_id": sid,
        "task": task,
        "variant": "direct",
        "outcome": outcome,
        "parsed": None,
        "target": None,
        "metadata": {},
        **fields,
    }


def write_run(
    path: Path,
    scores: dict[str, dict[str, Any]],
    model: str = "m",
    fingerprint: str = "fp-1",
    template: str = "tpl-1",
    temperature: float = 0.0,
    tasks: dict[str, dict[str, Any]] | None = None,
    environment: dict[str, Any] | None = None,
) -> Path:
    """A run directory in the runstore layout (manifest in results.json, samples.jsonl). `scores` maps
    task -> sample id -> a score, or the fields of that sample's record (outcome, parsed, metadata...);
    `tasks` overrides manifest fields of one task (n, dataset_fingerprint...)."""
    path.mkdir(parents=True)
    manifest_tasks = {
        t: {
            "args": {},
            "dataset_fingerprint": fingerprint,
            "template_hash": template,
            "n": len(s),
            "generation": {"temperature": temperature, "max_tokens": 16},
            **(tasks or {}).get(t, {}),
        }
        for t, s in scores.items()
    }
    manifest = {
        "model": {
            "spec": model,
            "generation_overrides": {"temperature": None, "max_tokens": None},
            "system_prompt": None,
        },
        "tasks": manifest_tasks,
        "variants": {"direct": {"name": "direct"}},
    }
    if environment is not None:
        manifest["environment"] = environment
    results = {
        "schema_version": SCHEMA_VERSION,
        "manifest": manifest,
        "manifest_hash": "h",
        "run": {"started": "2025-01-01T00:00:00Z"},
        "results": [
            {"task": t, "variant": "direct", "primary_metric": PRIMARY.get(t, "accuracy"), "metrics": {}}
            for t in scores
        ],
    }
    (path / "results.json").write_text(json.dumps(results))
    with (path / "samples.jsonl").open("w") as fh:
        for t, s in scores.items():
            for sid, value in s.items():
                fh.write(json.dumps(_record(t, sid, value)) + "\n")
    return path


def scores_with(correct: int, n: int = N) -> dict[str, float]:
    """The first `correct` of n samples right: dropping k points flips exactly k*n/100 pairs one way."""
    return {f"s{i:03d}": 1.0 if i < correct else 0.0 for i in range(n)}


@pytest.fixture
def base(tmp_path):
    return write_run(tmp_path / "base", {"alpha": scores_with(160), "beta": scores_with(120)})


def test_identical_runs_exit_0(base, tmp_path, capsys):
    cand = write_run(tmp_path / "cand", {"alpha": scores_with(160), "beta": scores_with(120)})
    assert main(["compare", str(base), str(cand)]) == 0
    out = capsys.readouterr().out
    assert "no regression (exit 0)" in out and "alpha" in out and "beta" in out


def test_ten_point_drop_on_200_samples_is_a_regression(base, tmp_path, capsys):
    cand = write_run(tmp_path / "cand", {"alpha": scores_with(140), "beta": scores_with(120)})
    assert main(["compare", str(base), str(cand), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    rows = {r["task"]: r for r in report["rows"]}
    assert rows["alpha"]["status"] == "regression" and rows["alpha"]["test"] == "mcnemar_exact"
    assert rows["alpha"]["delta"] == pytest.approx(-0.10)
    assert rows["alpha"]["ci_high"] < 0 and rows["alpha"]["worse"] == 20 and rows["alpha"]["better"] == 0
    assert rows["alpha"]["p_holm"] < 1e-5 and rows["beta"]["status"] == "ok"


def test_one_point_drop_passes_as_not_significant(base, tmp_path, capsys):
    cand = write_run(tmp_path / "cand", {"alpha": scores_with(158), "beta": scores_with(120)})
    assert main(["compare", str(base), str(cand), "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["delta"] == pytest.approx(-0.01) and row["status"] == "ok"
    assert row["p_holm"] > 0.05  # two discordant pairs: p = 0.5


def test_large_drop_that_is_not_significant_is_not_a_regression(tmp_path):
    """3 of 10 samples lost: 30 points, above the margin, but p = 0.25: a noisy task does not fail CI."""
    b = write_run(tmp_path / "b", {"small": scores_with(8, n=10)})
    c = write_run(tmp_path / "c", {"small": scores_with(5, n=10)})
    assert compare(b, c)["exit_code"] == 0
    assert compare(b, c, alpha=0.5)["exit_code"] == 1


def test_margin_decides_between_drop_and_regression(base, tmp_path):
    cand = write_run(tmp_path / "cand", {"alpha": scores_with(140), "beta": scores_with(120)})
    assert compare(base, cand, max_drop=0.15)["exit_code"] == 0
    assert compare(base, cand, max_drop=0.05)["exit_code"] == 1


# ---- the gate decides on each task's primary metric (issue 11, item 2) ------------------------------


def qa_scores(values: list[tuple[int, float]]) -> dict[str, float]:
    """longemotion_qa samples (token F1 per sample): [(count, score), ...] in order."""
    flat = [v for count, v in values for _ in range(count)]
    return {f"q{i:03d}": v for i, v in enumerate(flat)}


def test_fractional_drop_the_sign_test_missed_is_a_regression(tmp_path, capsys):
    """The issue's example: base F1 0.5 x100, candidate 0.51 x60 and 0.0 x40. 60 pairs better, 40
    worse (sign test p = 0.057), but the task's F1 drops by 0.194; the old gate passed it with exit 0."""
    b = write_run(tmp_path / "b", {"longemotion_qa": qa_scores([(100, 0.5)])})
    c = write_run(tmp_path / "c", {"longemotion_qa": qa_scores([(60, 0.51), (40, 0.0)])})
    assert main(["compare", str(b), str(c), "--format", "json"]) == 1
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["metric"] == "f1" and row["test"] == "bootstrap" and row["status"] == "regression"
    assert row["delta"] == pytest.approx(-0.194)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-0.245, -0.143), abs=0.01)
    assert (row["worse"], row["better"]) == (40, 60) and row["p"] < 1e-9


def test_drop_whose_significance_comes_from_improved_items_is_not_a_regression(tmp_path, capsys):
    """97 items gain 0.01, 3 items lose 1.0: F1 drops by 0.0203, past a 0.01 margin, and the old gate
    called it a significant regression because 97 of 100 pairs moved, all of them *up*. The drop
    itself rests on 3 items (standard error 0.017): its bootstrap p is about 0.24, so the gate passes."""
    b = write_run(tmp_path / "b", {"longemotion_qa": qa_scores([(97, 0.5), (3, 1.0)])})
    c = write_run(tmp_path / "c", {"longemotion_qa": qa_scores([(97, 0.51), (3, 0.0)])})
    assert main(["compare", str(b), str(c), "--max-drop", "0.01", "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["delta"] == pytest.approx(-0.0203) and row["status"] == "ok"
    assert (row["worse"], row["better"]) == (3, 97) and row["p"] == pytest.approx(0.24, abs=0.04)


def eqbench_run(path: Path, item_score: float, n: int = 50) -> Path:
    samples = {f"e{i}": {"score": item_score, "outcome": "correct"} for i in range(n)}
    return write_run(path, {"eqbench": samples})


def test_eqbench_is_gated_in_its_own_points(tmp_path, capsys):
    """EQ-Bench item scores are 0-10 and the task's score is 0-100: a drop from 5.0 to 4.8 per item is
    2 points of eqbench_score, and --max-drop is read in those points (the old gate saw 0.2)."""
    b, c = eqbench_run(tmp_path / "b", 5.0), eqbench_run(tmp_path / "c", 4.8)
    assert main(["compare", str(b), str(c), "--max-drop", "1"]) == 1
    out = capsys.readouterr().out
    assert "eqbench_score" in out and "units of each task's primary metric" in out
    report = compare(b, c, max_drop=1.0)
    row = report["rows"][0]
    assert (row["baseline"], row["candidate"], row["delta"]) == pytest.approx((50.0, 48.0, -2.0))
    assert row["max_drop"] == 1.0 and row["status"] == "regression"
    assert main(["compare", str(b), str(c), "--max-drop", "1", "--max-drop", "eqbench=3"]) == 0


def test_candidate_that_its_task_marks_failed_is_a_regression(tmp_path, capsys):
    """A candidate whose EQ-Bench result is marked failed (under 83.33% of items parseable) is scored on
    the few items that parsed: its delta there can be 0, but the gate must not pass it."""
    b, c = eqbench_run(tmp_path / "b", 5.0), eqbench_run(tmp_path / "c", 5.0)
    results = json.loads((c / "results.json").read_text())
    results["results"][0]["details"] = {"failed": True, "note": "only 20.0% of items parsed"}
    (c / "results.json").write_text(json.dumps(results))
    assert main(["compare", str(b), str(c), "--format", "json"]) == 1
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["delta"] == pytest.approx(0.0) and row["status"] == "regression"
    assert "only 20.0% of items parsed" in row["failed"]
    assert main(["compare", str(c), str(c)]) == 0  # failed on both sides: no change, not a regression


def test_auroc_is_recomputed_over_matched_pairs(tmp_path):
    """vignettes_affect is ranked by AUROC (affect item vs its matched neutral control): the gate
    rebuilds the task and resamples whole pairs."""

    def affect_run(path: Path, lost: int) -> Path:
        samples = {}
        for i in range(40):
            meta = {"pair_id": f"p{i}"}
            samples[f"a{i}"] = {
                "score": float(i >= lost),
                "parsed": 20.0 if i < lost else 80.0,
                "target": 1,
                "metadata": {**meta, "kind": "affect"},
            }
            samples[f"n{i}"] = {
                "score": 1.0,
                "parsed": 20.0,
                "target": 0,
                "metadata": {**meta, "kind": "neutral"},
            }
        return write_run(path, {"vignettes_affect": samples})

    report = compare(affect_run(tmp_path / "b", 0), affect_run(tmp_path / "c", 20))
    row = report["rows"][0]
    assert row["metric"] == "auroc" and row["test"] == "bootstrap" and row["n_groups"] == 40
    assert (row["baseline"], row["candidate"]) == pytest.approx((1.0, 0.75))
    assert row["status"] == "regression" and report["exit_code"] == 1


def test_choice_orders_of_one_item_are_resampled_together(tmp_path):
    """EmoBench's paper protocol asks each item in 4 orders: the 4 samples are not independent, so the
    gate resamples items (not McNemar over 200 'independent' pairs)."""

    def paper_run(path: Path, wrong: int) -> Path:
        samples = {
            f"en-{i}/o{k}": {"score": float(i >= wrong), "metadata": {"order": k}}
            for i in range(50)
            for k in range(4)
        }
        return write_run(
            path, {"emobench_ea": samples}, tasks={"emobench_ea": {"args": {"protocol": "paper"}}}
        )

    row = compare(paper_run(tmp_path / "b", 0), paper_run(tmp_path / "c", 10))["rows"][0]
    assert row["test"] == "bootstrap" and row["n_groups"] == 50 and row["n_paired"] == 200
    assert row["delta"] == pytest.approx(-0.2) and row["status"] == "regression"


def test_task_that_cannot_be_rebuilt_falls_back_to_the_mean_score(base, tmp_path):
    row = compare(base, base)["rows"][0]
    assert row["metric"] == "mean score"
    assert any("task alpha cannot be recomputed here (not a known task" in n for n in row["notes"])


def test_an_aggregate_that_fails_on_the_records_falls_back_to_the_mean_score(tmp_path):
    """vignettes' aggregate needs each record's target label: records without one make it raise, and
    the gate answers on the mean score with the reason instead of a traceback."""
    b = write_run(tmp_path / "b", {"vignettes": scores_with(20, n=40)})
    row = compare(b, b)["rows"][0]
    assert row["metric"] == "mean score" and row["status"] == "ok"
    assert any("accuracy of task vignettes cannot be recomputed here (TypeError" in n for n in row["notes"])


def test_point_estimates_only_skips_the_nested_intervals():
    from emobench import metrics as M

    with M.point_estimates_only():
        inside = M.mean([1.0, 2.0, 4.0])
    outside = M.mean([1.0, 2.0, 4.0])
    assert inside.value == outside.value and math.isnan(inside.ci_low) and not math.isnan(outside.ci_low)


# ---- errors, incomplete runs, verdicts ----------------------------------------------------------------


def test_candidate_errors_are_counted_and_fail_unless_allowed(tmp_path, capsys):
    """A candidate failing on 60 of 100 items used to pass (40 compared, delta 0, exit 0)."""
    b = write_run(tmp_path / "b", {"alpha": scores_with(50, n=100)})
    failed = {
        sid: ({"score": None, "outcome": "error"} if i < 60 else s)
        for i, (sid, s) in enumerate(scores_with(50, n=100).items())
    }
    c = write_run(tmp_path / "c", {"alpha": failed})
    assert main(["compare", str(b), str(c), "--format", "json"]) == 3
    report = json.loads(capsys.readouterr().out)
    row = report["rows"][0]
    assert row["n_errors"] == 60 and row["n_paired"] == 40 and row["status"] == "errors"
    assert "60 candidate sample(s) failed" in report["verdict"] and "alpha" in report["verdict"]
    assert main(["compare", str(b), str(c)]) == 3
    assert "60 candidate sample(s) failed" in capsys.readouterr().out
    assert main(["compare", str(b), str(c), "--allow-errors", "60"]) == 0


def test_incomplete_run_is_refused(base, tmp_path, capsys):
    partial = dict(list(scores_with(160).items())[:140])
    cand = write_run(
        tmp_path / "cand", {"alpha": partial, "beta": scores_with(120)}, tasks={"alpha": {"n": N}}
    )
    assert main(["compare", str(base), str(cand)]) == 2
    err = capsys.readouterr().err.strip()
    assert "incomplete run" in err and "alpha/direct has 140 of 200 samples" in err and "\n" not in err
    with pytest.raises(ConfigError, match="incomplete run"):
        compare(cand, base)


def test_regression_wins_over_incomparable_and_the_verdict_names_both(base, tmp_path, capsys):
    cand = write_run(
        tmp_path / "cand",
        {"alpha": scores_with(140), "beta": scores_with(120)},
        tasks={"beta": {"dataset_fingerprint": "fp-2"}},
    )
    assert main(["compare", str(base), str(cand)]) == 1
    verdict = capsys.readouterr().out.strip().splitlines()[-1]
    assert "1 task(s) regressed (alpha)" in verdict and "1 task(s) cannot be compared (beta)" in verdict
    assert verdict.endswith("(exit 1)")


def test_different_numerics_are_a_warning_not_a_failure(base, tmp_path, capsys):
    env = {"backend": "llama_cpp 0.3.2", "cpu": "AVX2 FMA"}
    b = write_run(tmp_path / "b", {"alpha": scores_with(160)}, environment=env)
    c = write_run(tmp_path / "c", {"alpha": scores_with(160)}, environment={**env, "cpu": "AVX512 FMA"})
    assert main(["compare", str(b), str(c)]) == 0
    out = capsys.readouterr().out
    assert "results come from different numerics: cpu" in out and "AVX512 FMA" in out
    assert main(["compare", str(b), str(b)]) == 0
    assert "different numerics" not in capsys.readouterr().out


def test_different_dataset_fingerprints_exit_2(base, tmp_path, capsys):
    cand = write_run(
        tmp_path / "cand", {"alpha": scores_with(160), "beta": scores_with(120)}, fingerprint="fp-2"
    )
    assert main(["compare", str(base), str(cand)]) == 2
    assert "dataset fingerprint differs" in capsys.readouterr().out
    assert main(["compare", str(base), str(cand), "--force"]) == 0


@pytest.mark.parametrize("change", [{"template": "tpl-2"}, {"temperature": 0.7}])
def test_different_template_or_generation_params_exit_2(base, tmp_path, change):
    cand = write_run(tmp_path / "cand", {"alpha": scores_with(160), "beta": scores_with(120)}, **change)
    report = compare(base, cand)
    assert report["exit_code"] == 2
    assert all(r["status"] == "incomparable" for r in report["rows"])


def test_task_missing_from_candidate_exit_2(base, tmp_path):
    cand = write_run(tmp_path / "cand", {"alpha": scores_with(160)})
    report = compare(base, cand)
    assert report["exit_code"] == 2 and report["rows"][1]["status"] == "missing"
    assert compare(base, cand, tasks=["alpha"])["exit_code"] == 0


def test_bad_input_exit_2_with_one_line(tmp_path, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    assert main(["compare", str(tmp_path / "broken"), str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "broken" in err and "not valid JSON" in err


@pytest.mark.parametrize(
    "flag",
    [
        ["--max-drop", "x"],
        ["--max-drop", "nosuchtask=1"],
        ["--allow-errors", "-1"],
        ["--task-file", "nowhere.yaml"],
    ],
)
def test_bad_flags_exit_2_with_one_line(base, capsys, flag):
    assert main(["compare", str(base), str(base), *flag]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


# ---- output formats --------------------------------------------------------------------------------


def test_junit_output_is_valid_xml_with_one_case_per_task(base, tmp_path, capsys):
    cand = write_run(tmp_path / "cand", {"alpha": scores_with(140), "beta": scores_with(121)})
    junit = tmp_path / "report.xml"
    md = tmp_path / "summary.md"
    assert (
        main(
            [
                "compare",
                str(base),
                str(cand),
                "--format",
                "junit",
                "--junit",
                str(junit),
                "--markdown",
                str(md),
            ]
        )
        == 1
    )
    for text in (capsys.readouterr().out, junit.read_text()):
        root = ET.fromstring(text)
        suite = root.find("testsuite")
        cases = {c.get("name"): c for c in suite.iter("testcase")}
        assert set(cases) == {"alpha", "beta"}
        assert suite.get("tests") == "2" and suite.get("failures") == "1"
        assert cases["alpha"].find("failure") is not None and cases["beta"].find("failure") is None
    summary = md.read_text()
    assert "| alpha |" in summary and "**regression**" in summary and "1 task(s) regressed" in summary


def test_junit_counts_failed_candidate_samples_as_errors(tmp_path):
    from emobench.compare_report import format_junit

    b = write_run(tmp_path / "b", {"alpha": scores_with(50, n=100)})
    failed = {**scores_with(50, n=100), "s000": {"score": None, "outcome": "error"}}
    c = write_run(tmp_path / "c", {"alpha": failed})
    suite = ET.fromstring(format_junit(compare(b, c))).find("testsuite")
    assert suite.get("errors") == "1"
    assert "1 candidate sample(s) failed" in suite.find("testcase/error").get("message")


def test_markdown_escapes_pipes_and_html_in_names(tmp_path):
    b = write_run(tmp_path / "b", {"t": scores_with(100)}, model="evil|<img src=x>")
    from emobench.compare_report import format_markdown

    text = format_markdown(compare(b, b))
    assert "<img" not in text and "evil\\|&lt;img" in text


def test_exact_binomial_and_holm_match_textbook_values():
    assert binomial_two_sided(0, 0) == 1.0
    assert binomial_two_sided(0, 5) == pytest.approx(2 / 32)
    assert binomial_two_sided(2, 10) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert binomial_two_sided(5000, 10000) == pytest.approx(1.0)
    assert math.isclose(binomial_two_sided(4000, 10000), 0.0, abs_tol=1e-50)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n in [(3, 17), (40, 100), (0, 1)]:
        assert binomial_two_sided(k, n) == pytest.approx(scipy_stats.binomtest(k, n).pvalue)


TASK_YAML = """name: gate_demo
data: items.jsonl
fields: {id: id, input: text, target: label}
labels: [calm, upset]
template: |
  {{ input }}
  {{ lettered_choices }}
  Reply with a JSON block {"answer": "<letter>"}.
"""


def test_gate_on_two_real_runs_through_the_loopback_server(tmp_path, make_server, capsys):
    """The whole path: two runs of one model server, the second one wrong on 30 of 200 items it got
    right before; compare (given the task file, so it rebuilds the task) must say regression on the
    task's accuracy with McNemar's test, and say nothing against itself."""
    rows = [
        {
            "id": f"g{i}",
            "text": f"Case {i}: the reply to the note came {'late' if i % 2 else 'early'}.",
            "label": "upset" if i % 2 else "calm",
        }
        for i in range(N)
    ]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task_file = tmp_path / "gate.yaml"
    task_file.write_text(TASK_YAML)

    def answerer(broken: set[int]):
        def answer(messages):
            text = messages[-1]["content"]
            i = int(text.split(":", 1)[0].split()[-1])
            right = "B" if i % 2 else "A"
            return json.dumps({"answer": ("A" if right == "B" else "B") if i in broken else right})

        return answer

    runs = {}
    for name, broken in (("base", set()), ("cand", set(range(0, 60, 2)))):
        srv = make_server(answer_fn=answerer(broken))
        runs[name] = tmp_path / name
        assert (
            main(
                [
                    "run",
                    "--model",
                    "openai/demo",
                    "--base-url",
                    srv.base_url,
                    "--task-file",
                    str(task_file),
                    "--tasks",
                    "gate_demo",
                    "-o",
                    str(runs[name]),
                    "-q",
                    "--no-cache",
                ]
            )
            == 0
        )
    assert main(["compare", str(runs["base"]), str(runs["base"] / "results.json")]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "compare",
                str(runs["base"]),
                str(runs["cand"]),
                "--task-file",
                str(task_file),
                "--format",
                "json",
            ]
        )
        == 1
    )
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["n_paired"] == N and row["worse"] == 30 and row["delta"] == pytest.approx(-0.15)
    assert row["metric"] == "accuracy" and row["test"] == "mcnemar_exact" and not row["notes"]
    # without --task-file the gate rebuilds the task from the path the run recorded in its manifest
    assert main(["compare", str(runs["base"]), str(runs["cand"]), "--format", "json"]) == 1
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["test"] == "mcnemar_exact" and not row["notes"]


def test_run_that_ends_with_failed_samples_exits_3(tmp_path, make_server, capsys):
    """`emobench run` used to exit 0 after "2 samples failed": a CI job could not tell."""
    rows = [{"id": f"g{i}", "text": f"Case {i}.", "label": "calm"} for i in range(3)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "gate.yaml").write_text(TASK_YAML)
    srv = make_server(fault_rate=1.0, faults=("500",))
    args = [
        "run",
        "--model",
        "openai/demo",
        "--base-url",
        srv.base_url,
        "--task-file",
        str(tmp_path / "gate.yaml"),
        "--tasks",
        "gate_demo",
        "-o",
        str(tmp_path / "run"),
        "-q",
        "--no-cache",
        "--max-retries",
        "0",
    ]
    assert main(args) == 3
    assert "3 samples failed" in capsys.readouterr().out
