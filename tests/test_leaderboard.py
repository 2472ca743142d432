"""`emobench leaderboard build`, `emobench show` and `emobench.load_results` on runs made here: two
models through the loopback server, the random and majority baselines, a run with another template
(incomparable) and a model whose name and replies carry HTML/JS payloads."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import emobench
from conftest import build_site
from emobench.cli import main
from emobench.leaderboard import significance_bands
from emobench.testing.server import LoopbackServer, ServerConfig

LABELS = ["calm", "glad", "hurt", "wary"]
PAYLOAD = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
EVIL_MODEL = "openai/evil</script><b onmouseover=alert(1)>"
TASK = """name: lb_demo
data: items.jsonl
fields: {{id: id, input: text, target: label}}
labels: [calm, glad, hurt, wary]
template: |
  {prefix}{{{{ input }}}}
  {{{{ lettered_choices }}}}
  Reply with a JSON block {{"answer": "<letter>"}}.
"""


def _answer_fn(accuracy_every: int, payload: bool = False):
    """Right on every item except every `accuracy_every`-th (by item number), optionally with a payload."""

    def answer(messages):
        text = messages[-1]["content"]
        i = int(text.split("#", 1)[1].split(" ", 1)[0])
        letter = "ABCD"[i % 4] if accuracy_every == 0 or i % accuracy_every else "ABCD"[(i + 1) % 4]
        reply = json.dumps({"answer": letter})
        return f"{reply}\n{PAYLOAD}" if payload else reply

    return answer


def make_runs(root: Path) -> dict[str, Path]:
    """Write the task files and run every model of the test leaderboard into root/runs/."""
    rows = [
        {"id": f"it{i:02d}", "text": f"Item #{i} a short scene number {i}.", "label": LABELS[i % 4]}
        for i in range(40)
    ]
    rows[3]["text"] = f"Item #3 {PAYLOAD} & friends."
    (root / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "task.yaml").write_text(TASK.format(prefix=""))
    (root / "task_other.yaml").write_text(TASK.format(prefix="Read carefully. "))
    runs: dict[str, Path] = {}

    def run(name: str, model: str, answer=None, task_file: str = "task.yaml", extra: tuple[str, ...] = ()):
        out = root / "runs" / name
        args = [
            "run",
            "--model",
            model,
            "--task-file",
            str(root / task_file),
            "--tasks",
            "lb_demo",
            "-o",
            str(out),
            "-q",
            "--no-cache",
            *extra,
        ]
        if answer is None:
            assert main(args) == 0
        else:
            with LoopbackServer(ServerConfig(answer_fn=answer)) as srv:
                assert main([*args, "--base-url", srv.base_url]) == 0
        runs[name] = out

    run("strong", "openai/strong-model", _answer_fn(0), extra=("--variant", "direct,cot"))
    run("weak", "openai/weak-model", _answer_fn(2))
    run("evil", EVIL_MODEL, _answer_fn(10, payload=True))
    run("random", "random")
    run("majority", "majority")
    run("other_template", "openai/other-template", _answer_fn(0), task_file="task_other.yaml")
    # an ESConv-style result: the task puts a strategy preference vector in details["preference"]
    results = json.loads((runs["weak"] / "results.json").read_text())
    results["results"][0]["details"]["preference"] = {"Question": 2.5, "Others": 0.5, "<i>Self</i>": 1.0}
    (runs["weak"] / "results.json").write_text(json.dumps(results))
    (root / "board.yaml").write_text(
        "name: test\ntitle: Test board\nruns: [runs/*/results.json]\n"
        "tasks:\n  - {task: lb_demo, metric: accuracy, floor: 0.25, ceiling: 1.0}\n"
    )
    return runs


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("board")
    runs = make_runs(root)
    out = build_site(root)
    return root, runs, out


def test_site_has_every_page_and_the_tables(site):
    root, runs, out = site
    names = {p.name for p in out.iterdir()}
    assert {"index.html", "leaderboard.csv", "leaderboard.json", "assets"} <= names
    assert sum(n.startswith("model-") for n in names) == 6
    assert sum(n.startswith("samples-") for n in names) == 6
    assert sum(n.startswith("task-") for n in names) == 1


def test_overall_scores_bands_and_normalisation(site):
    data = json.loads((site[2] / "leaderboard.json").read_text())
    overall = {r["model"]: r for r in data["overall"]}
    assert overall["openai/strong-model"]["overall"] == pytest.approx(100.0)
    assert overall["openai/weak-model"]["overall"] == pytest.approx(100 * (0.5 - 0.25) / 0.75)
    assert overall["majority"]["overall"] == pytest.approx(0.0)  # 10 of 40 = chance
    # 40 items: 100% and 90% overlap (band 1); 50% is clearly below; chance overlaps 50% (band 2)
    assert overall["openai/strong-model"]["band"] == overall[EVIL_MODEL]["band"] == 1
    assert overall["openai/weak-model"]["band"] == overall["majority"]["band"] == 2
    assert "unweighted mean" in data["leaderboard"]["aggregation"]
    rows = list(csv.DictReader((site[2] / "leaderboard.csv").open()))
    strong = [r for r in rows if r["model"] == "openai/strong-model" and r["task"] == "overall"]
    assert float(strong[0]["value"]) == pytest.approx(100.0)


def test_incomparable_run_is_flagged_and_not_ranked(site):
    data = json.loads((site[2] / "leaderboard.json").read_text())
    other = [e for e in data["entries"] if e["model"] == "openai/other-template"][0]
    assert other["comparable"] is False and "template hash differs" in other["flag"]
    assert other["band"] is None
    assert [r for r in data["overall"] if r["model"] == "openai/other-template"][0]["overall"] is None
    index = (site[2] / "index.html").read_text()
    assert "Results not ranked" in index and "template hash differs" in index


def test_variant_deltas_and_preference_chart_on_the_task_page(site):
    page = next(site[2].glob("task-*.html")).read_text()
    assert "Variant deltas" in page and "strong-model · cot" in page
    assert "Strategy preference" in page and "Question" in page
    assert "&lt;i&gt;Self&lt;/i&gt;" in page and "<i>Self" not in page


def test_every_text_is_escaped_in_the_html(site):
    out = site[2]
    for page in out.glob("*.html"):
        html = page.read_text()
        assert "window.__pwned=1</script>" not in html, page.name
        assert "<img" not in html and "<b onmouseover" not in html, page.name
    samples = next(out.glob("samples-openai-evil*-*.html")).read_text()
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in samples
    index = (out / "index.html").read_text()
    data_blob = index.split('id="leaderboard-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data_blob and json.loads(data_blob)["leaderboard"]["name"] == "test"


def test_site_requests_nothing_from_other_hosts(site):
    for page in site[2].glob("*.html"):
        html = page.read_text()
        for marker in ("http://", "https://", "//cdn", "@import"):
            assert marker not in html.replace('xmlns="http://www.w3.org/2000/svg"', ""), (page.name, marker)


def test_load_results_gives_one_row_per_task_variant_metric(site):
    root, runs, _ = site
    df = emobench.load_results([runs["strong"], str(root / "runs" / "w*")])
    assert set(df.model) == {"openai/strong-model", "openai/weak-model"}
    assert len(df[(df.model == "openai/strong-model") & (df.metric == "accuracy")]) == 2  # direct and cot
    prim = df[df.primary & (df.variant == "direct")].set_index("model")["value"]
    assert prim["openai/strong-model"] == 1.0 and prim["openai/weak-model"] == 0.5
    everything = emobench.load_results(root / "runs")
    assert len(everything[everything.metric == "accuracy"]) == 7


def test_show_prints_the_results_and_samples(site, capsys):
    runs = site[1]
    assert main(["show", str(runs["weak"])]) == 0
    assert "lb_demo" in capsys.readouterr().out
    assert main(["show", str(runs["weak"]), "--samples", "--outcome", "incorrect", "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 20 and all(r["outcome"] == "incorrect" for r in recs)
    assert main(["show", str(runs["weak"]), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("model,task,variant,metric")


def test_a_newer_run_of_the_same_model_replaces_the_older(site, tmp_path):
    root, runs, _ = site
    copy = tmp_path / "weak_again"
    shutil.copytree(runs["weak"], copy)
    res = json.loads((copy / "results.json").read_text())
    res["run"]["started"] = "2999-01-01T00:00:00Z"
    res["results"][0]["metrics"]["accuracy"]["value"] = 0.75
    (copy / "results.json").write_text(json.dumps(res))
    out = build_site(root, runs["weak"], copy, out=tmp_path / "site")
    data = json.loads((out / "leaderboard.json").read_text())
    assert data["entries"][0]["value"] == 0.75 and any("older run" in n for n in data["notes"])


def test_significance_bands_group_overlapping_cis():
    bands = significance_bands(
        [
            ("a", 0.9, 0.85, 0.95),
            ("b", 0.86, 0.80, 0.90),
            ("c", 0.7, 0.65, 0.75),
            ("d", 0.68, 0.6, 0.72),
            ("e", float("nan"), 0, 0),
        ]
    )
    assert bands == {"a": 1, "b": 1, "c": 2, "d": 2}


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\ntasks: []\n", "at least one task"),
        ("name: x\ntasks: [{task: t, floor: 1, ceiling: 0.5}]\n", "ceiling must be above floor"),
        ("name: x\nbogus: 1\ntasks: [t]\n", "unknown key(s) bogus"),
        ("tasks: [t\n", "not valid YAML"),
    ],
)
def test_bad_leaderboard_file_is_one_clear_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["leaderboard", "build", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(path) in err and "\n" not in err


def test_core_leaderboard_file_loads_and_lists_its_tasks():
    from emobench.leaderboard import load_config
    from emobench.paths import leaderboards_dir

    config = load_config(leaderboards_dir() / "core.yaml")
    assert config.name == "core" and len(config.tasks) >= 4 and config.runs
    assert all(t.ceiling > t.floor for t in config.tasks)


# ---- results that are not valid on their own terms (issue 11, item 5) --------------------------------

EQ_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "eqbench"


def _lucky_answer(messages):
    """The reference ratings of the one Nadia item, and no ratings at all for the other items: EQ-Bench
    scores parseable items only, so this model scores 100 on 1 of 3 items (its task marks it failed)."""
    if "Nadia would feel" in messages[-1]["content"]:
        return "Betrayed: 7\nAmused: 0\nGrateful: 0\nHurt: 8"
    return "They would feel many things."


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """An EQ-Bench board: a steady model (every item parsed), a lucky one (1 of 3 parsed), a flaky one
    (a model call failed on 1 of 3 items) and an incomplete run (2 of its manifest's 3 samples)."""
    root = tmp_path_factory.mktemp("checked")

    def run(name: str, config: ServerConfig, code: int = 0) -> Path:
        out = root / "runs" / name
        with LoopbackServer(config) as srv:
            assert (
                main(
                    [
                        "run",
                        "--model",
                        f"openai/{name}",
                        "--base-url",
                        srv.base_url,
                        "--tasks",
                        "eqbench",
                        "--data-dir",
                        str(EQ_FIXTURE),
                        "-o",
                        str(out),
                        "-q",
                        "--no-cache",
                        "--max-retries",
                        "0",
                    ]
                )
                == code
            )
        return out

    steady = run("steady", ServerConfig())
    run("lucky", ServerConfig(answer_fn=_lucky_answer))
    run("flaky", ServerConfig(fault_rate=0.3, faults=("500",), seed=3), code=3)
    partial = root / "runs" / "partial"
    shutil.copytree(steady, partial)
    res = json.loads((partial / "results.json").read_text())
    res["manifest"]["model"]["spec"] = "openai/partial"
    res["results"][0]["n_samples"] = res["results"][0]["n_scored"] = 2
    (partial / "results.json").write_text(json.dumps(res))
    (root / "eq.yaml").write_text(
        "name: eq\nruns: [runs/*/results.json]\ntasks:\n  - {task: eqbench, floor: 0, ceiling: 100}\n"
    )
    out = root / "site"
    assert (
        main(["leaderboard", "build", str(root / "eq.yaml"), "--out", str(out), "--runs", str(root / "runs")])
        == 0
    )
    data = json.loads((out / "leaderboard.json").read_text())
    entries = {e["model"].split("/")[-1]: e for e in data["entries"]}
    overall = {r["model"].split("/")[-1]: r for r in data["overall"]}
    return out, entries, overall


def test_a_result_its_task_marks_failed_is_shown_but_not_ranked(checked):
    """The lucky model parsed 1 of 3 items and scored 100 on it: it used to come first."""
    out, entries, overall = checked
    lucky = entries["lucky"]
    assert lucky["value"] == pytest.approx(100.0) and lucky["ranked"] is False and lucky["band"] is None
    assert "only 33.3% of items parsed" in lucky["invalid"]
    assert overall["lucky"]["overall"] is None and overall["steady"]["band"] == 1
    assert entries["steady"]["ranked"] is True and entries["steady"]["invalid"] == ""
    index = (out / "index.html").read_text()
    assert "Results not ranked" in index and "only 33.3% of items parsed" in index


def test_results_with_failed_samples_or_missing_samples_are_not_ranked(checked):
    _, entries, overall = checked
    assert entries["flaky"]["n_errors"] == 1 and entries["flaky"]["ranked"] is False
    assert "1 of 3 samples failed" in entries["flaky"]["invalid"] and "5%" in entries["flaky"]["invalid"]
    assert entries["partial"]["ranked"] is False
    assert "incomplete: 2 of 3 samples" in entries["partial"]["invalid"]
    assert overall["flaky"]["overall"] is None and overall["partial"]["overall"] is None


def test_parse_failure_rate_is_over_samples_not_the_metric_n(checked):
    """EQ-Bench's n is its parseable items: 2 unparseable of 3 samples is 67%, not 2 / 1 = 200%."""
    _, entries, overall = checked
    assert entries["lucky"]["n"] == 1 and entries["lucky"]["n_unparseable"] == 2
    assert overall["lucky"]["parse_failure_rate"] == pytest.approx(2 / 3)
    assert overall["steady"]["parse_failure_rate"] == 0.0
