"""The vignette tasks end to end against the loopback server, the baselines, and the AIPsy loader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import FIXTURES
from emobench.audit import EMOTIONS, read_items
from emobench.cli import main
from emobench.errors import ConfigError, DataError
from emobench.paths import tasks_dir
from emobench.registry import make_task

BATTERY = tasks_dir() / "data" / "vignettes.jsonl"
_STORY = re.compile(r"Story: (.*?)(?:\n|$)", re.DOTALL)


def _items_by_text(items) -> dict:
    return {it.text: it for it in items}


def oracle(items, wrong_unless=lambda it: True):
    """A scripted model that knows the gold answers (for the items where `wrong_unless` holds; else it
    answers Joy / probability 0)."""
    by_text = _items_by_text(items)

    def answer(messages):
        prompt = messages[-1]["content"]
        it = by_text[_STORY.search(prompt).group(1).strip()]
        if "Options:" in prompt:
            emotion = it.emotion if wrong_unless(it) else "joy"
            return json.dumps({"answer": chr(65 + EMOTIONS.index(emotion))})
        yes = it.kind != "neutral"
        p = (90 if yes else 10) if wrong_unless(it) else 0
        return f'Thinking it over.\n{{"answer": "{"Yes" if yes else "No"}", "probability": {p}}}'

    return answer


def run_cli(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "run"
    assert main(["run", *args, "-o", str(out), "-q"]) == 0
    results = json.loads((out / "results.json").read_text())
    return {r["task"]: r for r in results["results"]}


def test_default_suite_runs_every_shipped_affect_item_and_pair():
    items = read_items(BATTERY)
    n_affect = sum(1 for it in items if it.kind == "affect")
    vignettes = list(make_task("vignettes", {}).load_samples())
    detect = list(make_task("vignettes_affect", {}).load_samples())
    assert len(vignettes) == n_affect >= 64
    assert len(detect) == 2 * n_affect
    assert sorted(s.target for s in detect) == [0] * n_affect + [1] * n_affect
    assert all(s.choices == [e.capitalize() for e in EMOTIONS] for s in vignettes)


def test_tasks_run_end_to_end_with_accuracy_auroc_and_cis(tmp_path, make_server):
    srv = make_server(answer_fn=oracle(read_items(BATTERY)))
    res = run_cli(tmp_path, "--model", "openai/x", "--base-url", srv.base_url,
                  "--tasks", "vignettes,vignettes_affect")
    acc = res["vignettes"]["metrics"]["accuracy"]
    assert acc["value"] == 1.0 and acc["n"] == 64 and 0.9 < acc["ci_low"] < 1.0 == acc["ci_high"]
    confusion = res["vignettes"]["details"]["confusion"]
    assert all(confusion[e][e] == 8 for e in EMOTIONS)
    det = res["vignettes_affect"]
    assert det["primary_metric"] == "auroc"
    assert det["metrics"]["auroc"]["value"] == 1.0 and det["metrics"]["auroc"]["n"] == 128
    assert det["metrics"]["accuracy"]["value"] == 1.0
    assert det["metrics"]["pair_win_rate"]["value"] == 1.0
    sign = det["details"]["sign_test"]
    assert sign["wins"] == 64 and sign["losses"] == 0 and sign["p_value"] < 1e-15
    assert det["details"]["score_source"] == {"verbalised": 128}


def test_default_loopback_answers_are_near_chance(tmp_path, server):
    res = run_cli(tmp_path, "--model", "openai/x", "--base-url", server.base_url,
                  "--tasks", "vignettes,vignettes_affect")
    acc = res["vignettes"]["metrics"]["accuracy"]
    assert acc["ci_low"] <= 1 / 8 <= acc["ci_high"]
    det = res["vignettes_affect"]  # the loopback's canned sentence is no probability: unparseable
    assert det["n_unparseable"] == 128
    assert det["metrics"]["auroc"]["value"] == 0.5 and det["details"]["sign_test"]["ties"] == 64


def test_random_baseline_is_within_its_ci_of_chance(tmp_path):
    res = run_cli(tmp_path, "--model", "random", "--tasks", "vignettes,vignettes_affect")
    acc = res["vignettes"]["metrics"]["accuracy"]
    assert acc["n"] == 64 and acc["ci_low"] <= 0.125 <= acc["ci_high"]
    auroc = res["vignettes_affect"]["metrics"]["auroc"]
    assert auroc["ci_low"] <= 0.5 <= auroc["ci_high"]


def test_keyword_gap_with_both_sets(tmp_path, make_server):
    """A model that only gets keyword-rich items right shows a large positive keyword gap."""
    srv = make_server(answer_fn=oracle(read_items(BATTERY), wrong_unless=lambda it: it.kind != "affect"))
    res = run_cli(tmp_path, "--model", "openai/x", "--base-url", srv.base_url,
                  "--tasks", "vignettes,vignettes_affect", "--task-arg", "set=both")
    m = res["vignettes"]["metrics"]
    assert m["accuracy"]["value"] == pytest.approx(8 / 64)  # it answers Joy on keyword-free items
    assert m["accuracy_keyword_rich"]["value"] == 1.0 and m["accuracy_keyword_rich"]["n"] == 16
    assert m["keyword_gap"]["value"] == pytest.approx(14 / 16) and m["keyword_gap"]["n"] == 16
    assert m["keyword_gap"]["ci_low"] > 0.5
    d = res["vignettes_affect"]["metrics"]
    assert d["auroc_keyword_rich"]["value"] == 1.0 and d["auroc"]["value"] < 1.0
    assert d["keyword_gap"]["value"] == 1.0


def test_keyword_rich_set_alone_is_the_headline_metric(tmp_path):
    res = run_cli(tmp_path, "--model", "random", "--tasks", "vignettes,vignettes_affect",
                  "--task-arg", "set=keyword_rich")
    assert res["vignettes"]["metrics"]["accuracy"]["n"] == 16
    assert res["vignettes_affect"]["metrics"]["auroc"]["n"] == 32
    assert "keyword_gap" not in res["vignettes"]["metrics"]


def test_set_argument_is_validated(tmp_path, capsys):
    with pytest.raises(ConfigError, match="set='nope'"):
        list(make_task("vignettes", {"set": "nope"}).load_samples())
    assert main(["run", "--model", "random", "--tasks", "vignettes", "--task-arg", "set=nope",
                 "-o", str(tmp_path / "r"), "-q"]) == 2
    assert "choose one of keyword_free, keyword_rich, both" in capsys.readouterr().err


@pytest.mark.parametrize("reply, value", [
    ('{"answer": "Yes", "probability": 85}', 85.0),
    ('```json\n{"answer": "No", "probability": "12.5"}\n```', 12.5),
    ('{"answer": "yes"}', 100.0),
    ("No. Nothing in the story suggests it.", 0.0),
    ("<think>maybe 99</think>{\"probability\": 70}", 70.0),
    ('{"probability": 250}', None),
    ("I cannot tell.", None),
    ("", None),
])
def test_affect_reply_parsing(reply, value):
    task = make_task("vignettes_affect", {})
    sample = next(iter(task.load_samples()))
    assert task.parse(reply, sample) == value
    assert task.parse(task.format_answer(30.0, sample), sample) == 30.0


def test_affect_scores_come_from_yes_no_loglikelihoods_when_available():
    task = make_task("vignettes_affect", {})

    def rec(kind, pair, lls):
        parsed = 100.0 if lls[0] > lls[1] else 0.0
        target = int(kind != "neutral")
        return {"sample_id": f"{pair}-{kind}", "outcome": "correct", "score": float((parsed >= 50) == target),
                "parsed": parsed, "target": target, "metadata": {"kind": kind, "pair_id": pair},
                "trace": {"mode": "loglikelihood", "loglikelihoods": lls}, "mode": "loglikelihood"}

    # every item is answered "No", but affect items are less sure of it than their controls
    records = [rec("affect", "p1", [-2.0, -1.0]), rec("neutral", "p1", [-5.0, -0.5]),
               rec("affect", "p2", [-1.5, -1.0]), rec("neutral", "p2", [-4.0, -1.0])]
    metrics, details = task.aggregate(records)
    assert metrics["auroc"].value == 1.0 and metrics["accuracy"].value == 0.5
    assert details["sign_test"]["wins"] == 2 and details["score_source"] == {"loglikelihood": 4}


# ---- AIPsy-Affect --------------------------------------------------------------------------------------
def write_aipsy(root: Path, rename: dict[str, str] | None = None) -> Path:
    """The original fixture rows as hub-style parquet files: <root>/aipsy-affect/data/<split>-0000....parquet."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rows = json.loads((FIXTURES / "aipsy" / "rows.json").read_text())
    folder = root / "aipsy-affect" / "data"
    folder.mkdir(parents=True)
    for split in ("clinical", "neutral", "moderate", "complex_neutral"):
        frame = pd.DataFrame(rows[split]).rename(columns=rename or {})
        frame.to_parquet(folder / f"{split}-00000-of-00001.parquet")
    return root


def test_aipsy_loader_maps_the_fixture_columns(tmp_path):
    root = write_aipsy(tmp_path)
    samples = list(make_task("aipsy_affect", {}, data_dir=str(root)).load_samples())
    assert len(samples) == 8 and [s.metadata["category"] for s in samples] == list(EMOTIONS)
    assert samples[0].input.startswith("The retired teacher") and samples[0].id == "aipsy-clinical-C001"
    detect = list(make_task("aipsy_affect_detect", {}, data_dir=str(root)).load_samples())
    assert len(detect) == 16 and sum(s.target for s in detect) == 8
    pairs = {s.metadata["pair_id"] for s in detect}
    assert len(pairs) == 8  # each clinical item found its neutral control
    moderate = list(make_task("aipsy_affect_detect", {"affect": "moderate", "control": "complex_neutral"},
                              data_dir=str(root)).load_samples())
    assert len(moderate) == 4 and len({s.metadata["pair_id"] for s in moderate}) == 4


def test_aipsy_loader_detects_other_column_names(tmp_path):
    root = write_aipsy(tmp_path, {"vignette": "scenario", "emotion": "target_emotion", "id": "item_id",
                                  "pair_id": "unused"})
    samples = list(make_task("aipsy_affect_detect", {}, data_dir=str(root)).load_samples())
    # no pair column now: the number in item_id ("C003" / "N003") pairs an item with its control
    by_pair: dict[str, list[str]] = {}
    for s in samples:
        by_pair.setdefault(s.metadata["pair_id"], []).append(s.id)
    assert by_pair["3"] == ["aipsy-clinical-C003", "aipsy-neutral-N003"]


def test_aipsy_unmappable_columns_are_a_clear_error(tmp_path, capsys):
    root = write_aipsy(tmp_path, {"vignette": "blob", "emotion": "tag"})
    path = root / "aipsy-affect" / "data" / "clinical-00000-of-00001.parquet"
    import pandas as pd

    frame = pd.read_parquet(path)
    frame["blob"] = frame["blob"].str.len()  # no text column any more
    frame.to_parquet(path)
    # the emotion column is found by its values whatever its name; the text column cannot be
    with pytest.raises(DataError, match=r"clinical-00000-of-00001.parquet: cannot find the text column\(s\) "
                                        r"among the columns found: id, pair_id, tag, blob"):
        list(make_task("aipsy_affect", {}, data_dir=str(root)).load_samples())


def test_aipsy_runs_end_to_end_from_data_dir(tmp_path, make_server):
    root = write_aipsy(tmp_path)
    rows = json.loads((FIXTURES / "aipsy" / "rows.json").read_text())
    from emobench.audit import Item

    items = [Item(r["id"], str(r["pair_id"]), kind, r["emotion"] if kind == "affect" else None, r["vignette"])
             for split, kind in (("clinical", "affect"), ("neutral", "neutral")) for r in rows[split]]
    srv = make_server(answer_fn=oracle(items))
    res = run_cli(tmp_path, "--model", "openai/x", "--base-url", srv.base_url, "--data-dir", str(root),
                  "--tasks", "aipsy_affect,aipsy_affect_detect")
    assert res["aipsy_affect"]["metrics"]["accuracy"]["value"] == 1.0
    assert res["aipsy_affect_detect"]["metrics"]["auroc"]["value"] == 1.0
    assert res["aipsy_affect_detect"]["details"]["sign_test"]["wins"] == 8


def test_aipsy_without_local_files_or_network_is_a_clear_error(tmp_path, capsys):
    code = main(["run", "--model", "random", "--tasks", "aipsy_affect", "--data-dir", str(tmp_path),
                 "-o", str(tmp_path / "r"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "hf://keidolabs/aipsy-affect" in err and "--data-dir" in err and "\n" not in err


@pytest.mark.slow
def test_embedded_model_scores_affect_from_yes_no_loglikelihoods(tmp_path):
    """The real local backend ranks Yes/No by log-likelihood; the AUROC uses P(Yes) from them."""
    from conftest import has_embedded_model

    if not has_embedded_model():
        pytest.skip("the embedded SmolLM2 GGUF / llama-cpp-python is not installed (extra: local)")
    res = run_cli(tmp_path, "--tasks", "vignettes_affect", "--limit", "6")
    det = res["vignettes_affect"]
    assert det["details"]["score_source"] == {"loglikelihood": 6}
    assert 0.0 <= det["metrics"]["auroc"]["value"] <= 1.0 and det["metrics"]["auroc"]["n"] == 6
    sign = det["details"]["sign_test"]
    assert sign["wins"] + sign["losses"] + sign["ties"] == 3
    assert sign["ties"] == 0  # continuous P(Yes) scores, not the parsed 0/100
