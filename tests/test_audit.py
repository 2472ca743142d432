"""The leakage audit over the shipped battery, and proof that each of its checks can fail."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from emobench.audit import EMOTIONS, Item, audit, bow_leakage, load_lexicon, read_items, sentence_count
from emobench.cli import main
from emobench.errors import DataError
from emobench.paths import tasks_dir

BATTERY = tasks_dir() / "vignettes" / "vignettes.jsonl"


@pytest.fixture(scope="module")
def shipped() -> list[Item]:
    return read_items(BATTERY)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_shipped_battery_has_the_specified_shape(shipped):
    kinds = Counter((it.kind, it.emotion) for it in shipped)
    for emotion in EMOTIONS:
        assert kinds[("affect", emotion)] >= 8, emotion
        assert kinds[("keyword_rich", emotion)] >= 2, emotion
    affect_pairs = {it.pair_id for it in shipped if it.kind == "affect"}
    neutral_pairs = {it.pair_id for it in shipped if it.kind == "neutral"}
    assert affect_pairs == neutral_pairs  # one matched control per affect item, none orphaned
    assert len(affect_pairs) == sum(1 for it in shipped if it.kind == "affect") >= 64


def test_every_shipped_item_passes_the_audit(shipped):
    report = audit(shipped)
    assert report.problems == []
    assert report.keyword_hits == 0
    assert all(row["matched"] for row in report.pairs)
    assert all(abs(row["length_ratio"] - 1) <= 0.15 for row in report.pairs)
    assert all(row["sentences_affect"] == row["sentences_neutral"] for row in report.pairs)


def test_bag_of_words_classifier_stays_near_chance_on_shipped_keyword_free_items(shipped):
    bow = bow_leakage(shipped)
    assert bow["chance"] == pytest.approx(1 / 8)
    assert bow["n_test"] >= 48 and bow["n_train"] >= 16
    assert bow["near_chance"], bow  # the 95% interval of its accuracy includes 1/8
    # ... while the same classifier does read emotion words: held-out keyword-rich items are far above chance
    assert bow["keyword_rich_loo_accuracy"] >= 0.5


def test_bag_of_words_check_fails_when_a_category_shares_vocabulary():
    """A battery whose sadness items all mention a funeral (and so on) is caught by the classifier."""
    cue = {
        "joy": "balloons confetti",
        "trust": "keys handed",
        "fear": "growl darkness",
        "surprise": "confetti jumped",
        "sadness": "funeral coffin",
        "disgust": "maggots vomit",
        "anger": "slammed fist",
        "anticipation": "countdown clock",
    }
    items = []
    for e in EMOTIONS:
        items.append(Item(f"{e}-k", f"{e}-k", "keyword_rich", e, f"The {cue[e]} scene."))
        for i in range(6):
            items.append(Item(f"{e}-{i}", f"{e}-{i}", "affect", e, f"Person {i} saw the {cue[e]} there."))
    bow = bow_leakage(items)
    assert not bow["near_chance"] and bow["accuracy"] > 0.5


def test_lexicon_finds_inflections_prefix_terms_and_phrases():
    lex = load_lexicon()
    words = {w for w, _ in lex.find("Terrified, she was astonishingly calm, looking forward to Sam's rage.")}
    assert {"terrified", "astonishingly", "looking forward", "rage"} <= words
    cats = dict(lex.find("He was furious and disgusted"))
    assert cats == {"furious": "anger", "disgusted": "disgust"}
    # no false friends: 'made' is not 'mad', 'content' is not listed, 'alarm clock' is not 'alarmed'
    assert lex.find("She made the content for the alarm clock at the madrasa.") == []


def test_sentence_count_ignores_titles():
    assert sentence_count("Mr. Okafor sat. Dr. Adeyemi stood up! 'Why?' he said.") == 3


def test_audit_command_passes_on_the_shipped_battery(capsys):
    assert main(["audit-keywords", str(BATTERY)]) == 0
    out = capsys.readouterr().out
    assert "0 emotion keyword(s)" in out and "near chance" in out and "64/64 matched" in out


def test_audit_command_reports_a_keyword_with_file_line_id_and_word(tmp_path, capsys):
    path = _write(
        tmp_path / "items.jsonl",
        [
            {
                "id": "a1",
                "pair_id": "p1",
                "kind": "affect",
                "emotion": "anger",
                "text": "Ravi read the bill twice. He was furious and threw it away.",
            },
            {
                "id": "n1",
                "pair_id": "p1",
                "kind": "neutral",
                "emotion": None,
                "text": "Ravi read the bill twice. He was finished and filed it away.",
            },
        ],
    )
    assert main(["audit-keywords", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{path}:1: a1: emotion keyword 'furious' (anger) in a affect item"]


def test_audit_command_reports_unmatched_pairs(tmp_path, capsys):
    path = _write(
        tmp_path / "items.jsonl",
        [
            {
                "id": "a1",
                "pair_id": "p1",
                "kind": "affect",
                "emotion": "fear",
                "text": "The lift stopped between floors and the lights went out. Ola pressed every button.",
            },
            {
                "id": "n1",
                "pair_id": "p1",
                "kind": "neutral",
                "emotion": None,
                "text": "The lift stopped at her floor.",
            },
            {
                "id": "a2",
                "pair_id": "p2",
                "kind": "affect",
                "emotion": "joy",
                "text": "Ola read the letter and ran to tell her brother.",
            },
        ],
    )
    assert main(["audit-keywords", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: n1: length" in err and f"{path}:2: n1: 1 sentences vs 2 in a1" in err
    assert f"{path}:3: a2: no neutral control with pair_id 'p2'" in err
    assert main(["audit-keywords", str(path), "--no-neutral-ok", "--max-length-diff", "0.9"]) == 1
    assert "no neutral control" not in capsys.readouterr().err


def test_keyword_rich_item_without_its_emotion_word_is_a_problem(tmp_path):
    path = _write(
        tmp_path / "items.jsonl",
        [
            {
                "id": "k1",
                "pair_id": "p1",
                "kind": "keyword_rich",
                "emotion": "joy",
                "text": "Ola won the race.",
            }
        ],
    )
    report = audit(read_items(path))
    assert report.problems == [f"{path}:1: k1: keyword-rich item names no joy word"]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"id": "a", "kind": "affect", "emotion": "rage", "text": "x"}, "emotion 'rage' is not one of"),
        ({"id": "a", "kind": "mixed", "emotion": "joy", "text": "x"}, "kind 'mixed' is not one of"),
        ({"id": "a", "kind": "affect", "emotion": "joy"}, "missing field(s) 'text'"),
    ],
)
def test_bad_item_is_a_one_line_data_error_naming_file_and_line(tmp_path, capsys, row, message):
    good = {"id": "z", "pair_id": "z", "kind": "neutral", "text": "A plain line."}
    path = _write(tmp_path / "items.jsonl", [good, row])
    with pytest.raises(DataError) as exc:
        read_items(path)
    assert str(exc.value).startswith(f"{path}:2: ") and message in str(exc.value)
    assert main(["audit-keywords", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"emobench: error: {path}:2:") and "\n" not in err


def test_audit_reads_csv_and_prints_json(tmp_path, capsys):
    path = tmp_path / "items.csv"
    path.write_text(
        "id,pair_id,kind,emotion,text\n"
        "a1,p1,affect,sadness,The old dog's bowl stayed by the door. Nobody filled it.\n"
        "n1,p1,neutral,,The old dog's bowl stood by the door. Tim refilled it.\n",
        encoding="utf-8",
    )
    assert main(["audit-keywords", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["pairs"][0]["matched"] and report["bag_of_words"]["skipped"]
