"""`emobench compare`: the CI regression gate on synthetic paired runs whose truth is known, plus one
end-to-end gate on two real runs through the loopback server."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from emobench.cli import main
from emobench.compare import binomial_two_sided, compare, holm, paired_test

N = 200


def write_run(path: Path, scores: dict[str, dict[str, float]], model: str = "m", fingerprint: str = "fp-1",
              template: str = "tpl-1", temperature: float = 0.0) -> Path:
    """A run directory in the runstore layout (manifest in results.json, samples.jsonl) with the given
    per-sample scores: task -> sample id -> 0/1 score."""
    path.mkdir(parents=True)
    tasks = {t: {"args": {}, "dataset_fingerprint": fingerprint, "template_hash": template, "n": len(s),
                 "generation": {"temperature": temperature, "max_tokens": 16}} for t, s in scores.items()}
    manifest = {"model": {"spec": model, "generation_overrides": {"temperature": None, "max_tokens": None},
                          "system_prompt": None}, "tasks": tasks, "variants": {"direct": {"name": "direct"}}}
    results = {"manifest": manifest, "manifest_hash": "h", "run": {"started": "2025-01-01T00:00:00Z"},
               "results": [{"task": t, "variant": "direct", "primary_metric": "accuracy",
                            "metrics": {"accuracy": {"value": sum(s.values()) / len(s), "ci_low": 0, "ci_high": 1,
                                                     "n": len(s)}}} for t, s in scores.items()]}
    (path / "results.json").write_text(json.dumps(results))
    with (path / "samples.jsonl").open("w") as fh:
        for t, s in scores.items():
            for sid, score in s.items():
                fh.write(json.dumps({"sample_id": sid, "task": t, "variant": "direct", "score": score,
                                     "outcome": "correct" if score else "incorrect"}) + "\n")
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
    assert rows["alpha"]["status"] == "regression"
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


def test_different_dataset_fingerprints_exit_2(base, tmp_path, capsys):
    cand = write_run(tmp_path / "cand", {"alpha": scores_with(160), "beta": scores_with(120)}, fingerprint="fp-2")
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


def test_junit_output_is_valid_xml_with_one_case_per_task(base, tmp_path, capsys):
    cand = write_run(tmp_path / "cand", {"alpha": scores_with(140), "beta": scores_with(121)})
    junit = tmp_path / "report.xml"
    md = tmp_path / "summary.md"
    assert main(["compare", str(base), str(cand), "--format", "junit", "--junit", str(junit),
                 "--markdown", str(md)]) == 1
    for text in (capsys.readouterr().out, junit.read_text()):
        root = ET.fromstring(text)
        suite = root.find("testsuite")
        cases = {c.get("name"): c for c in suite.iter("testcase")}
        assert set(cases) == {"alpha", "beta"}
        assert suite.get("tests") == "2" and suite.get("failures") == "1"
        assert cases["alpha"].find("failure") is not None and cases["beta"].find("failure") is None
    summary = md.read_text()
    assert "| alpha |" in summary and "**regression**" in summary and "1 task(s) regressed" in summary


def test_markdown_escapes_pipes_and_html_in_names(tmp_path):
    b = write_run(tmp_path / "b", {"t": scores_with(100)}, model="evil|<img src=x>")
    from emobench.compare import format_markdown

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


def test_fractional_scores_use_the_sign_test():
    res = paired_test([0.5, 0.5, 0.2], [0.4, 0.5, 0.9])
    assert res["test"] == "sign" and (res["worse"], res["better"]) == (1, 1)


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
    right before; compare must say regression, and say nothing against itself."""
    rows = [{"id": f"g{i}", "text": f"Case {i}: the reply to the note came {'late' if i % 2 else 'early'}.",
             "label": "upset" if i % 2 else "calm"} for i in range(N)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "gate.yaml").write_text(TASK_YAML)

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
        assert main(["run", "--model", "openai/demo", "--base-url", srv.base_url, "--task-file",
                     str(tmp_path / "gate.yaml"), "--tasks", "gate_demo", "-o", str(runs[name]), "-q",
                     "--no-cache"]) == 0
    assert main(["compare", str(runs["base"]), str(runs["base"] / "results.json")]) == 0
    capsys.readouterr()
    assert main(["compare", str(runs["base"]), str(runs["cand"]), "--format", "json"]) == 1
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["n_paired"] == N and row["worse"] == 30 and row["delta"] == pytest.approx(-0.15)
