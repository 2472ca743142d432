"""LongEmotion EC / QA / ED: loaders (current and old field names), the native parse rules and
metrics, QA token F1 against a literal transcription of the reference, and end-to-end runs."""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter

import pytest

from conftest import FIXTURES, shared_dataset
from emobench.cli import main
from emobench.errors import DataError
from emobench.metrics import token_f1
from emobench.registry import make_task

DATA = str(FIXTURES / "longemotion")


# ---- reference: a literal transcription of LongEmotion's evaluations/qa_score.py (LongBench) ----------


def ref_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch if ch not in exclude else " " for ch in text)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def ref_f1_score(prediction, ground_truth):
    common = Counter(prediction) & Counter(ground_truth)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction)
    recall = 1.0 * num_same / len(ground_truth)
    return (2 * precision * recall) / (precision + recall)


def ref_qa_f1_score(prediction, ground_truth):
    return ref_f1_score(ref_normalize_answer(prediction).split(), ref_normalize_answer(ground_truth).split())


def _pairs(n: int, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    vocab = [
        "the",
        "The",
        "a",
        "An",
        "an",
        "calm",
        "Calm",
        "anxiety",
        "heart-rate",
        "rate",
        "no",
        "yes",
        "U.S.",
        "it's",
        "don't",
        "Theatre",
        "another",
        "(the)",
        "a.",
        "",
        " ",
        "  ",
        "\t",
        "Ünïcode",
        "café",
        "emotion,",
        "emotions",
        "42",
        "4.2",
        "—",
        "“quoted”",
        "and/or",
        "e.g.",
        "THE",
        "an-",
        "-the-",
    ]
    pairs = []
    for _ in range(n):
        pred = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 8)))
        gold = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 6)))
        if rng.random() < 0.15:
            pred = gold.upper() + rng.choice(["", ".", "!", " the"])
        pairs.append((pred, gold))
    pairs += [("", ""), ("", "calm"), ("calm", ""), ("The.", "the"), ("a an the", "the")]
    return pairs


def test_qa_f1_is_identical_to_the_reference_on_1000_pairs():
    pairs = _pairs(1000)
    assert len(pairs) >= 1000
    ours = [token_f1(p, g) for p, g in pairs]
    ref = [float(ref_qa_f1_score(p, g)) for p, g in pairs]
    assert max(abs(a - b) for a, b in zip(ours, ref, strict=True)) <= 1e-12
    assert sum(1 for x in ref if 0 < x < 1) > 0  # the pairs exercise partial overlaps, not only 0/1
    assert token_f1("The U.S. heart-rate", "us heart rate") < 1.0  # punctuation -> space: 'u s' != 'us'
    assert token_f1("Heart-rate!", "heart rate") == 1.0


# ---- EC ------------------------------------------------------------------------------------------------


def test_ec_reads_both_subsets_with_current_and_old_field_names():
    task = make_task("longemotion_ec", {}, DATA)
    samples = list(task.load_samples())
    assert [s.id for s in samples] == ["emobench-1", "emobench-2", "finentity-7", "finentity-8"]
    old = samples[-1]  # `context` / `Subject` instead of `content` / `subject`
    assert old.metadata["subject"] == "Brightfield Labs" and "Brightfield" in old.context
    assert old.target == "Positive" and old.choices == ["Positive", "Neutral", "Negative"]
    only = make_task("longemotion_ec", {"subset": "finentity"}, DATA)
    assert {s.metadata["subset"] for s in only.load_samples()} == {"finentity"}


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"Emotion": "Joy"}', "Joy"),
        ('I think...\n```json\n{"Emotion": "Guilt & Fear"}\n```', "Guilt & Fear"),
        ('<think>maybe "Emotion": "Anger"</think>\n{"Emotion": "Joy"}', "Joy"),
        ('The answer: "Emotion": "Fear", final', "Fear"),
        ("Joy, clearly.", None),
        ("", None),
    ],
)
def test_ec_parse_follows_the_emotion_json_rule(reply, expected):
    task = make_task("longemotion_ec", {}, DATA)
    sample = next(iter(task.load_samples()))
    assert task.parse(reply, sample) == expected


def _ec_file(tmp_path, *rows: dict) -> str:
    with (tmp_path / "Emotion_Classification_Finentity.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return str(tmp_path)


def _ec_row(choices, i: int = 1) -> dict:
    return {
        "id": i,
        "content": "Shares of Acme rose.",
        "subject": "Acme",
        "label": "Positive",
        "choices": choices,
    }


def test_ec_choices_stored_as_a_json_string_are_read_as_a_list(tmp_path):
    data_dir = _ec_file(tmp_path, _ec_row('["Positive", "Neutral", "Negative"]'))
    sample = next(iter(make_task("longemotion_ec", {"subset": "finentity"}, data_dir).load_samples()))
    assert sample.choices == ["Positive", "Neutral", "Negative"]


@pytest.mark.parametrize("choices", ["Positive, Neutral", '["Positive", 3]', "[]", '{"a": 1}'])
def test_ec_choices_that_are_no_list_of_labels_name_file_and_line(tmp_path, choices):
    data_dir = _ec_file(tmp_path, _ec_row(["Positive", "Negative"]), _ec_row(choices, 2))
    with pytest.raises(DataError, match=r"Emotion_Classification_Finentity.jsonl:2: 'choices' must be"):
        list(make_task("longemotion_ec", {"subset": "finentity"}, data_dir).load_samples())


def test_licence_is_the_hub_cards_mit_with_the_sources_caveat():
    for name in ("longemotion_ec", "longemotion_qa", "longemotion_ed"):
        licence = make_task(name, {}, DATA).license
        assert licence.startswith("MIT") and "own terms" in licence


def test_ec_scoring_is_exact_and_case_sensitive():
    task = make_task("longemotion_ec", {}, DATA)
    sample = next(iter(task.load_samples()))
    assert task.score("Joy", sample) == 1.0 and task.score("joy", sample) == 0.0


def _run(tmp_path, server, task: str, *extra: str) -> dict:
    out = tmp_path / task
    code = main(
        [
            "run",
            "--model",
            "openai/m",
            "--base-url",
            server.base_url,
            "--tasks",
            task,
            "--data-dir",
            DATA,
            "-q",
            "--output",
            str(out),
            *extra,
        ]
    )
    assert code == 0
    return next(r for r in json.loads((out / "results.json").read_text())["results"] if r["task"] == task)


def test_ec_runs_end_to_end_with_per_subset_accuracy(tmp_path, server):
    server.config.answers = {
        "Mara finally": '{"Emotion": "Joy"}',
        "Tomas borrowed": '{"Emotion": "guilt & fear"}',
        "Northwind": '```json\n{"Emotion": "Negative"}\n```',
        "Brightfield": "Positive!",
    }
    result = _run(tmp_path, server, "longemotion_ec")
    assert result["metrics"]["accuracy"]["value"] == pytest.approx(
        0.5
    )  # 'guilt & fear' wrong case; bare text
    assert result["metrics"]["accuracy_ignore_case_punct"]["value"] == pytest.approx(0.75)
    assert result["n_unparseable"] == 1
    by = result["details"]["accuracy_by_subset"]
    assert by["emobench"]["value"] == 0.5 and by["finentity"]["value"] == 0.5


# ---- QA ------------------------------------------------------------------------------------------------


def test_qa_runs_end_to_end_with_mean_token_f1(tmp_path, server):
    server.config.answers = {
        "Which emotion": "Calm.",
        "last for a week": "No, it did not",
        "measure before": "<think>hmm</think>resting heart rate",
    }
    result = _run(tmp_path, server, "longemotion_qa")
    expected = (
        1.0 + token_f1("No, it did not", "no") + token_f1("resting heart rate", "the resting heart rate")
    ) / 3
    assert result["primary_metric"] == "f1"
    assert result["metrics"]["f1"]["value"] == pytest.approx(expected)


def test_qa_missing_field_names_file_and_line(tmp_path):
    bad = tmp_path / "Emotion_QA.jsonl"
    bad.write_text(
        json.dumps({"number": "F1", "problem": "q?", "answer": "a", "context": "c"})
        + "\n"
        + json.dumps({"number": "F2", "answer": "a", "context": "c"})
        + "\n"
    )
    task = make_task("longemotion_qa", {}, str(tmp_path))
    with pytest.raises(DataError, match=r"Emotion_QA.jsonl:2: missing field 'problem' or 'question'"):
        list(task.load_samples())


def test_without_data_dir_and_offline_the_hub_error_is_one_clear_line():
    task = make_task("longemotion_qa", {}, None)
    with pytest.raises(DataError, match="LongEmotion/LongEmotion.*--data-dir"):
        list(task.load_samples())


# ---- ED ------------------------------------------------------------------------------------------------


def test_ed_runs_end_to_end_and_out_of_range_indices_are_unparseable(tmp_path, server):
    server.config.answers = {
        "I keep checking the news": '```json\n{"index": 4}\n```',
        "I lie awake": '{"index": 7}',
    }
    result = _run(tmp_path, server, "longemotion_ed")
    assert result["metrics"]["accuracy"]["value"] == 0.5 and result["n_unparseable"] == 1


def test_ed_bad_ground_truth_names_file_and_line(tmp_path):
    row = {
        "text": [{"index": 0, "context": "x"}, {"index": 1, "context": "y"}],
        "label": ["a", "b"],
        "length": 2,
        "ground_truth": 5,
    }
    (tmp_path / "Emotion_Detection.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"Emotion_Detection.jsonl:1: ground_truth 5"):
        list(make_task("longemotion_ed", {}, str(tmp_path)).load_samples())


def test_ed_repeated_id_names_file_and_line(tmp_path):
    row = {
        "id": 3,
        "text": [{"index": 0, "context": "x"}, {"index": 1, "context": "y"}],
        "label": ["a", "b"],
        "length": 2,
        "ground_truth": 1,
    }
    (tmp_path / "Emotion_Detection.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"Emotion_Detection.jsonl:2: duplicate id '3'"):
        list(make_task("longemotion_ed", {}, str(tmp_path)).load_samples())


def test_ed_loads_the_real_file():
    path = shared_dataset("longemotion", "Emotion_Detection.jsonl")
    task = make_task("longemotion_ed", {}, str(path.parent))
    samples = list(task.load_samples())
    assert len(samples) == task.size == 136
    assert all(26 <= s.metadata["n_segments"] <= 36 for s in samples)
    assert all(0 <= s.target < s.metadata["n_segments"] for s in samples)
    assert len({s.id for s in samples}) == 136
    first = task.render(samples[0])[-1]["content"]
    assert first.count('["index": ') == samples[0].metadata["n_segments"]
