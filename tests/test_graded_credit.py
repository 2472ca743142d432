"""Graded credit for near misses, checked by hand: wheel credit on Plutchik's wheel (emobench/wheel.py),
expected agreement with compound gold labels (emobench/compound.py), and free-text answers on the
three-tier emotion hierarchy (emobench/hierarchy.py, task files without options)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FIXTURES, loop_run_args
from emobench.cli import main
from emobench.compound import agreement, label_set
from emobench.errors import ConfigError, DataError
from emobench.hierarchy import load
from emobench.registry import make_task
from emobench.taskfile import task_class_from_file
from emobench.wheel import CHANCE, PETALS, credit, is_plutchik, wheel_distance

# ---- Plutchik's wheel ---------------------------------------------------------------------------------


def test_the_wheel_order_and_its_opposites():
    assert PETALS == ("joy", "trust", "fear", "surprise", "sadness", "disgust", "anger", "anticipation")
    for a, b in [("joy", "sadness"), ("trust", "disgust"), ("fear", "anger"), ("surprise", "anticipation")]:
        assert wheel_distance(a, b) == 4 and credit(a, b) == 0.0
    assert wheel_distance("anticipation", "joy") == 1  # the wheel closes


def test_wheel_credit_by_hand():
    # anger sits between disgust and anticipation; sadness is two petals away, surprise three, fear opposite
    answers = ["anger", "disgust", "anticipation", "sadness", "surprise", "fear", None, "boredom"]
    assert [credit("anger", a) for a in answers] == [1.0, 0.5, 0.5, 0.25, 0.125, 0.0, 0.0, 0.0]
    assert pytest.approx((1 + 0.5 + 0.5 + 0.25 + 0.25 + 0.125 + 0.125 + 0) / 8) == CHANCE


def _record(target: int, parsed: int | None) -> dict:
    return {
        "sample_id": f"{target}-{parsed}",
        "outcome": "correct" if parsed == target else ("unparseable" if parsed is None else "incorrect"),
        "score": float(parsed == target),
        "parsed": parsed,
        "target": target,
        "metadata": {"kind": "affect", "category": PETALS[target]},
        "trace": {},
        "mode": None,
    }


def test_the_vignettes_task_reports_wheel_credit_and_where_answers_fell():
    task = make_task("vignettes", {})
    joy, trust, fear, sadness, anger = (PETALS.index(e) for e in ("joy", "trust", "fear", "sadness", "anger"))
    records = [
        _record(joy, joy),
        _record(joy, trust),
        _record(joy, sadness),
        _record(anger, fear),
        _record(fear, None),
    ]
    metrics, details = task.aggregate(records)
    assert metrics["wheel_credit"].value == pytest.approx((1 + 0.5 + 0 + 0 + 0) / 5)
    assert metrics["wheel_credit"].n == 5
    assert details["wheel"]["confusion"]["joy"]["trust"] == 1
    assert details["wheel"]["confusion"]["fear"]["unparseable"] == 1
    assert details["wheel"]["weights"] == {"0": 1.0, "1": 0.5, "2": 0.25, "3": 0.125, "4": 0.0}


def test_a_task_file_with_plutchiks_labels_gets_wheel_credit_and_a_wheel_plot(tmp_path, make_server):
    labels = list(PETALS)
    rows = [{"id": f"i{k}", "text": f"Story number {k}.", "label": labels[k]} for k in range(4)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "wheel.yaml").write_text(
        "name: wheel_demo\ndata: items.jsonl\nfields: {id: id, input: text, target: label}\n"
        f"labels: {json.dumps([x.capitalize() for x in labels])}\n"
        'template: "{{ input }}\\n{{ lettered_choices }}\\nReply with {\\"answer\\": \\"<letter>\\"}."\n'
    )
    # joy -> joy (1), trust -> fear (adjacent, 0.5), fear -> anger (opposite, 0), surprise -> sadness (0.5)
    answers = {"number 0.": "A", "number 1.": "C", "number 2.": "G", "number 3.": "E"}
    srv = make_server(answers={k: json.dumps({"answer": v}) for k, v in answers.items()})
    out = tmp_path / "run"
    args = loop_run_args(srv.base_url, tmp_path / "wheel.yaml")
    assert main([*args, "--tasks", "wheel_demo", "-q", "--no-cache", "-o", str(out)]) == 0
    entry = json.loads((out / "results.json").read_text())["results"][0]
    assert entry["metrics"]["wheel_credit"]["value"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    svg = (out / "wheel-wheel_demo-direct.svg").read_text()
    assert svg.startswith("<svg") and "trust answered fear: 1 (wheel distance 1)" in svg
    assert is_plutchik(["Joy", "TRUST", *PETALS[2:]]) and not is_plutchik(PETALS[:7])


# ---- compound labels ----------------------------------------------------------------------------------


def test_expected_agreement_by_hand():
    assert label_set("Anger & Disappointment") == {"anger", "disappointment"}
    assert agreement("Guilt", "Guilt & Fear") == 0.5  # one of two acceptable labels
    assert agreement("fear & GUILT", "Guilt & Fear") == 1.0
    assert agreement("Guilt & Joy", "Guilt & Fear") == pytest.approx(1 / 3)
    assert (
        agreement("Joy", "Joy") == 1.0 and agreement("Joy", "Fear") == 0.0 and agreement(None, "Joy") == 0.0
    )
    assert agreement(["Anger", "Sadness"], "Anger") == 0.5  # a list of acceptable labels reads the same


def test_longemotion_ec_reports_expected_agreement_on_compound_labels(tmp_path, server):
    server.config.answers = {
        "Mara finally": '{"Emotion": "Joy"}',  # 1
        "Tomas borrowed": '{"Emotion": "Guilt"}',  # half of "Guilt & Fear"
        "Northwind": '{"Emotion": "Positive"}',  # 0
        "Brightfield": '{"Emotion": "positive"}',  # 1 (labels compared in any case)
    }
    out = tmp_path / "run"
    args = ["run", "--model", "openai/m", "--base-url", server.base_url, "--tasks", "longemotion_ec"]
    assert main([*args, "--data-dir", str(FIXTURES / "longemotion"), "-q", "--no-cache", "-o", str(out)]) == 0
    entry = json.loads((out / "results.json").read_text())["results"][0]
    assert entry["metrics"]["accuracy"]["value"] == pytest.approx(0.25)  # exact match: only Mara
    assert entry["metrics"]["expected_agreement"]["value"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert entry["details"]["n_compound_gold"] == 1


# ---- the three-tier hierarchy ----------------------------------------------------------------------


def test_the_hierarchy_places_near_answers_at_the_right_tier():
    h = load()
    irritated, furious, annoyed = h.lookup("irritated"), h.lookup("furious"), h.lookup("Annoyed")
    assert irritated is not None and irritated.primary == "anger"
    assert [h.agree(irritated, furious, t) for t in (1, 2, 3)] == [True, False, False]
    assert [h.agree(irritated, annoyed, t) for t in (1, 2, 3)] == [True, True, False]
    assert [h.agree(irritated, h.lookup("irritation"), t) for t in (1, 2, 3)] == [True, True, True]
    assert h.find("She is not happy; she is terrified.") == h.lookup("terrified")  # negated term skipped
    let_down = h.find("she felt let down")  # a phrase
    assert let_down is not None and h.agree(let_down, h.lookup("disappointed"), 2)
    assert h.find("bored") is None


def test_the_shipped_hierarchy_is_well_formed():
    h = load()
    primaries = {t.primary for t in h.terms.values()}
    assert primaries == {"joy", "love", "surprise", "anger", "sadness", "fear", "disgust", "shame"}
    for p in primaries:  # each primary's own name is one of its general words
        assert h.lookup(p) is not None and h.lookup(p).primary == p and h.lookup(p).secondary == p
    families = {(t.primary, t.secondary) for t in h.terms.values()}
    assert len(families) == 45 and len({t.term for t in h.terms.values()}) > 250


def test_a_malformed_hierarchy_line_names_its_line(tmp_path):
    bad = tmp_path / "h.txt"
    bad.write_text("# comment\nanger > rage: furious\nanger rage furious\n")
    with pytest.raises(DataError, match=r"h\.txt:3: expected"):
        load(bad)
    twice = tmp_path / "twice.txt"
    twice.write_text("anger > rage: furious\nanger > irritation: annoyed, furious\n")
    with pytest.raises(DataError, match=r"twice\.txt:2: 'furious' is listed twice"):
        load(twice)


def _free_text_task(tmp_path: Path, golds: list[str], extra: str = "") -> Path:
    rows = [
        {"id": f"f{k}", "text": f"Scene {k}: what does she feel?", "feeling": g} for k, g in enumerate(golds)
    ]
    (tmp_path / "free.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "free.yaml"
    path.write_text(
        "name: free_demo\ndata: free.jsonl\nfields: {id: id, input: text, target: feeling}\n"
        'template: "{{ input }} Name the emotion in a word, as {\\"answer\\": \\"<word>\\"}."\n' + extra
    )
    return path


def test_free_text_answers_are_scored_per_tier(tmp_path, make_server):
    golds = ["furious", "annoyed", "irritation", "happy", "terrified"]
    replies = {
        "Scene 0:": '{"answer": "Irritated"}',  # anger, another family: tier 1
        "Scene 1:": '{"answer": "irritated"}',  # the irritation family: tiers 1-2
        "Scene 2:": "She is irritated.",  # the same term, no JSON: tiers 1-3
        "Scene 3:": '{"answer": "bored"}',  # not a listed term: unmapped, wrong at every tier
        "Scene 4:": "Not happy at all, just scared.",  # fear (general) for terrified: tier 1
    }
    srv = make_server(answers=replies)
    path, out = _free_text_task(tmp_path, golds), tmp_path / "run"
    args = loop_run_args(srv.base_url, path)
    assert main([*args, "--tasks", "free_demo", "-q", "--no-cache", "-o", str(out)]) == 0
    entry = json.loads((out / "results.json").read_text())["results"][0]
    m = entry["metrics"]
    assert m["accuracy"]["value"] == pytest.approx(4 / 5) == m["accuracy_tier1"]["value"]
    assert m["accuracy_tier2"]["value"] == pytest.approx(2 / 5)
    assert m["accuracy_tier3"]["value"] == pytest.approx(1 / 5)
    assert entry["details"]["n_unmapped"] == 1 and entry["n_unparseable"] == 0
    assert "calibration" not in entry  # no options, no option confidence


def test_a_free_text_gold_outside_the_hierarchy_names_its_line(tmp_path):
    cls = task_class_from_file(_free_text_task(tmp_path, ["happy", "bored"]))
    with pytest.raises(DataError, match=r"free\.jsonl:2: gold emotion 'bored' is not a term"):
        list(cls().load_samples())
    with pytest.raises(ConfigError, match="output_mode: generate"):
        task_class_from_file(_free_text_task(tmp_path, ["happy"], "output_mode: multiple_choice\n"))
