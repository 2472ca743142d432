"""ESConv next-strategy prediction: Kang et al. (2024) metrics reproduced on their published
results file, the Bradley-Terry model, strategy-name normalisation, framing, splits, and a run."""

from __future__ import annotations

import inspect
import json
import random
from pathlib import Path

import pytest

from conftest import FIXTURES, shared_dataset
from emobench.cli import main
from emobench.errors import ConfigError, DataError
from emobench.metrics import bradley_terry, preference_bias
from emobench.registry import builtin_tasks, make_task

DATA = str(FIXTURES / "esconv")
esconv = inspect.getmodule(builtin_tasks()["esconv_strategy"])

# Kang et al.'s own scorer (1eastar/EmotionalSupport metrics.py) on their results.json
KANG_PREFERENCES = [
    ("Affirmation and Reassurance", 2.54),
    ("Providing Suggestions", 1.92),
    ("Reflection of Feelings", 1.02),
    ("Others", 0.89),
    ("Question", 0.63),
    ("Self-disclosure", 0.48),
    ("Restatement or Paraphrasing", 0.31),
    ("Information", 0.22),
]


def test_kang2024_results_reproduce_accuracy_f1_and_preference_bias():
    rows = json.loads(shared_dataset("esconv", "kang2024_results.json").read_text())
    report = esconv.strategy_report([r["strg_gold"] for r in rows], [r["strg_pred"] for r in rows])
    assert report["n"] == 1611 and report["unparseable"] == 0
    assert round(100 * report["accuracy"], 1) == 24.5
    assert round(100 * report["macro_f1"], 1) == 21.9
    assert round(100 * report["weighted_f1"], 1) == 22.5
    assert round(report["preference_bias"], 3) == 0.767
    ranked = sorted(report["preference"].items(), key=lambda kv: -kv[1])
    assert [name for name, _ in ranked] == [name for name, _ in KANG_PREFERENCES]
    for (_, ours), (_, theirs) in zip(ranked, KANG_PREFERENCES, strict=True):
        assert ours == pytest.approx(theirs, abs=0.006)
    assert sum(report["preference"].values()) == pytest.approx(8.0)


def test_bradley_terry_ranks_the_class_that_wins_most_first_and_survives_zero_rows():
    wins = [[0, 9, 9], [1, 0, 5], [1, 1, 0]]
    p = bradley_terry(wins)
    assert p[0] > p[1] > p[2] and sum(p) == pytest.approx(3.0)
    never_lost = bradley_terry([[0, 3, 0], [0, 0, 0], [0, 0, 0]])  # zero denominators and zero strengths
    assert all(x == x for x in never_lost)  # no NaN
    assert preference_bias([1.0, 1.0, 1.0]) == 0.0


def test_noisy_strategy_names_are_normalised_or_reported():
    norm = esconv.normalise_strategy
    assert norm("Questions") == "Question" and norm("Other") == "Others"
    assert norm("[Reflection of feelings]") == "Reflection of Feelings"
    assert norm("Approval and Reassurance") == "Affirmation and Reassurance"
    assert norm("Restatement") == "Restatement or Paraphrasing"
    assert norm("Direct Guidance") is None and norm(None) is None


def test_framing_windows_end_with_a_seeker_turn_and_show_supporter_strategies():
    task = make_task("esconv_strategy", {"source": "esconv"}, DATA)
    samples = [s for split in ("train", "dev", "test") for s in task.load_samples(split)]
    # per dialogue: the supporter turns 2, 5 and 7 follow a seeker turn (0 is first, 3 follows a
    # supporter turn); the turn-7 label 'Direct Guidance' (every 4th dialogue) is dropped
    assert len(samples) == 20 * 3 - 5
    for s in samples:
        assert s.input.rsplit("\n", 2)[-2] == "seeker"
        assert s.input.startswith("supporter\n- Strategy: Question\n- Utterance: Hi,")
    late = [s for s in samples if s.id.endswith("-5")]
    assert len(late) == 20 and all("- Strategy: Reflection of Feelings" in s.input for s in late)
    assert len({s.id for s in samples}) == len(samples)


def test_split_is_seed_13_70_15_15_by_dialogue_and_reported():
    task = make_task("esconv_strategy", {"source": "esconv"}, DATA)
    dialogs = {
        split: {s.id.rsplit("-", 1)[0] for s in task.load_samples(split)}
        for split in ("train", "dev", "test")
    }
    assert (len(dialogs["train"]), len(dialogs["dev"]), len(dialogs["test"])) == (14, 3, 3)
    assert not (dialogs["train"] & dialogs["dev"]) and not (dialogs["dev"] & dialogs["test"])
    assert dialogs == {split: {s.id.rsplit("-", 1)[0] for s in task.load_samples(split)} for split in dialogs}
    assert all(s.id.startswith("esconv-test-") for s in task.load_samples("test"))
    list(task.load_samples("train"))
    report = task.load_report
    assert report["source"] == "esconv" and report["samples"] > 0
    assert "Questions -> Question" in report["normalised"] or "Other -> Others" in report["normalised"]


def test_failed_esconv_real_file_uses_speaker_listener_and_counts_noisy_labels():
    path = shared_dataset("esconv", "FailedESConv.json")
    task = make_task("esconv_strategy", {"source": "failed"}, str(path.parent))
    total = sum(len(list(task.load_samples(split))) for split in ("train", "dev", "test"))
    assert total > 1500
    list(task.load_samples("train"))
    assert task.load_report["dropped"].get("Direct Guidance", 0) > 0
    assert task.load_report["normalised"]["Questions -> Question"] > 100


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"strategy": "Questions"}', "Question"),
        ('```json\n{"strategy": "reflection of feelings"}\n```', "Reflection of Feelings"),
        ("Answer: F", "Providing Suggestions"),
        ("I would go with Self-disclosure.", "Self-disclosure"),
        ("no idea", None),
    ],
)
def test_parse_reads_names_variants_and_letters(reply, expected):
    task = make_task("esconv_strategy", {"source": "kang2024"}, DATA)
    sample = next(iter(task.load_samples()))
    got = task.parse(reply, sample)
    assert (esconv.STRATEGIES[got] if got is not None else None) == expected


def test_kang_source_runs_end_to_end_with_preferences_in_details(tmp_path, server):
    # the fixture's 8 items: gold cycles Question/Affirmation/Reflection/Others; the script always
    # answers Affirmation -> 2 of 8 right; Affirmation beat the three strategies it replaced
    server.config.answers = {"driving test": '{"strategy": "Affirmation and Reassurance"}'}
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--model",
            "openai/m",
            "--base-url",
            server.base_url,
            "--tasks",
            "esconv_strategy",
            "--task-arg",
            "source=kang2024",
            "--data-dir",
            DATA,
            "-q",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads((out / "results.json").read_text())["results"][0]
    assert result["metrics"]["accuracy"]["value"] == 0.25
    details = result["details"]
    prefs = details["preference"]
    assert all(
        prefs["Affirmation and Reassurance"] > prefs[s]
        for s in ("Question", "Reflection of Feelings", "Others")
    )
    assert details["predicted_distribution"]["Affirmation and Reassurance"] == 8
    assert details["loader"]["source"] == "kang2024"
    assert result["metrics"]["preference_bias"]["value"] > 0


def test_bad_arguments_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="source='nope'"):
        make_task("esconv_strategy", {"source": "nope"}, DATA)
    with pytest.raises(DataError, match="none of ESConv.json"):
        list(make_task("esconv_strategy", {}, str(tmp_path)).load_samples())
    (tmp_path / "ESConv.json").write_text(json.dumps([{"dialog": [{"speaker": "robot", "content": "hi"}]}]))
    with pytest.raises(DataError, match="unknown speaker 'robot'"):
        for split in ("train", "dev", "test"):
            list(make_task("esconv_strategy", {}, str(tmp_path)).load_samples(split))


# ---- the hub's layout (thu-coai/esconv): train.txt / valid.txt / test.txt ------------------------
def write_hub_layout(folder: Path, dialogs: list[dict]) -> Path:
    """The files the authors' `codes_zcj/_reformat/process.py` puts on the hub, written from the original
    fixture dialogues: shuffled with seed 13, the first 15% `valid.txt`, the next 15% `test.txt`, the rest
    `train.txt`; one JSON dialogue a line whose turns are {text, speaker: usr|sys, strategy}."""

    def turn(t: dict) -> dict:
        text = " ".join(t["content"].split())
        if t["speaker"] == "seeker":
            return {"text": text, "speaker": "usr"}
        return {"text": text, "speaker": "sys", "strategy": t["annotation"]["strategy"]}

    keep = ("emotion_type", "problem_type", "situation")
    rows = [{**{k: d[k] for k in keep}, "dialog": [turn(t) for t in d["dialog"]]} for d in dialogs]
    random.Random(13).shuffle(rows)
    n = int(0.15 * len(rows))
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("valid.txt", rows[:n]), ("test.txt", rows[n : 2 * n]), ("train.txt", rows[2 * n :])):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    return folder


def _fixture_dialogs() -> list[dict]:
    return json.loads((FIXTURES / "esconv" / "ESConv.json").read_text())


def _as_tuples(samples) -> list[tuple]:
    return [(s.id, s.input, s.target, s.metadata["situation"]) for s in samples]


def test_hub_snapshot_in_data_dir_gives_the_samples_of_esconv_json(tmp_path):
    """The hub's files are ESConv.json split by the same seed-13 shuffle, so both give the same samples,
    under the same ids."""
    snapshot = write_hub_layout(tmp_path / "esconv", _fixture_dialogs())
    from_hub_files = make_task("esconv_strategy", {}, str(tmp_path))
    from_json = make_task("esconv_strategy", {}, DATA)
    for split in ("train", "dev", "test"):
        ours = list(from_hub_files.load_samples(split))
        assert ours and _as_tuples(ours) == _as_tuples(from_json.load_samples(split)), split
    assert from_hub_files.load_report["file"] == str(snapshot)
    assert from_hub_files.load_report["source"] == "esconv"


def test_hub_dataset_rows_are_json_text_with_the_strategy_on_the_turn(tmp_path, monkeypatch):
    """The default path: `datasets.load_dataset("thu-coai/esconv", split=...)` reads the hub's .txt files
    into one `text` column of JSON, splits train/validation/test. The same library reads a local copy of
    that layout here, standing in for the download only (the old loader read `annotation.strategy` alone
    and got 0 samples)."""
    datasets = pytest.importorskip("datasets")
    snapshot = write_hub_layout(tmp_path / "hub", _fixture_dialogs())
    (snapshot / "ESConv.json").write_text(json.dumps(_fixture_dialogs()))  # on the hub too; not a split
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    asked = []

    def hub_rows(repo_id, split):
        asked.append((repo_id, split))
        return enumerate((dict(row) for row in datasets.load_dataset(str(snapshot), split=split)), start=1)

    monkeypatch.setattr(esconv.data, "hub_rows", hub_rows)
    task = make_task("esconv_strategy", {})
    test, dev = list(task.load_samples("test")), list(task.load_samples("dev"))
    assert _as_tuples(test) == _as_tuples(make_task("esconv_strategy", {}, DATA).load_samples("test"))
    assert dev and asked == [("thu-coai/esconv", "test"), ("thu-coai/esconv", "validation")]
    assert task.load_report["file"] == "hf://thu-coai/esconv"


def test_a_split_with_no_samples_is_a_clear_error(tmp_path):
    dialogs = _fixture_dialogs()
    for d in dialogs:
        for turn in d["dialog"]:
            if turn["speaker"] == "supporter":
                turn["annotation"]["strategy"] = "Direct Guidance"  # not one of the 8: dropped
    write_hub_layout(tmp_path, dialogs)
    with pytest.raises(
        DataError,
        match=r"test.txt: no samples in the test split: no supporter turn with one "
        r"of the 8 strategies follows a seeker turn",
    ):
        list(make_task("esconv_strategy", {}, str(tmp_path)).load_samples("test"))


def test_a_malformed_hub_file_line_is_named(tmp_path):
    folder = write_hub_layout(tmp_path, _fixture_dialogs())
    with (folder / "test.txt").open("a") as fh:
        fh.write(json.dumps({"situation": "x", "dialog": [{"speaker": "bot", "text": "hi"}]}) + "\n")
    with pytest.raises(DataError, match=r"test.txt:4: turn 0: unknown speaker 'bot'"):
        list(make_task("esconv_strategy", {}, str(tmp_path)).load_samples("test"))


# ---- which file `source=auto` reads ----------------------------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def test_auto_never_reads_the_failed_dialogues_and_says_which_file_it_read(tmp_path, capsys):
    _copy(FIXTURES / "esconv" / "ESConv.json", tmp_path / "FailedESConv.json")
    kang = _copy(FIXTURES / "esconv" / "kang2024_results.json", tmp_path / "kang2024_results.json")
    task = make_task("esconv_strategy", {}, str(tmp_path))
    assert len(list(task.load_samples())) == 8 and task.load_report["source"] == "kang2024"
    assert capsys.readouterr().err == f"emobench: esconv_strategy: reading {kang} (source=kang2024)\n"
    esconv_json = _copy(FIXTURES / "esconv" / "ESConv.json", tmp_path / "ESConv.json")
    task = make_task("esconv_strategy", {}, str(tmp_path))
    list(task.load_samples())
    assert task.load_report["source"] == "esconv" and task.load_report["file"] == str(esconv_json)
    failed = make_task("esconv_strategy", {"source": "failed"}, str(tmp_path))
    list(failed.load_samples())
    assert failed.load_report["source"] == "failed"


def test_only_the_failed_dialogues_are_not_read_unasked(tmp_path):
    _copy(FIXTURES / "esconv" / "ESConv.json", tmp_path / "FailedESConv.json")
    with pytest.raises(
        DataError,
        match=r"none of ESConv.json, train.txt \+ valid.txt \+ test.txt, "
        r"kang2024_results.json, results.json found under --data-dir "
        r"\(FailedESConv.json is read only with --task-arg source=failed\)",
    ):
        list(make_task("esconv_strategy", {}, str(tmp_path)).load_samples())


def test_kangs_file_under_its_official_name_results_json(tmp_path):
    _copy(FIXTURES / "esconv" / "kang2024_results.json", tmp_path / "results.json")
    for source in ("auto", "kang2024"):
        task = make_task("esconv_strategy", {"source": source}, str(tmp_path))
        assert len(list(task.load_samples())) == 8
        assert task.load_report["file"] == str(tmp_path / "results.json")
    assert not task.has_split("dev") and task.has_split("test")  # an evaluation set: no dev split to tune on
    (tmp_path / "results.json").write_text(json.dumps({"results": []}))  # e.g. a run's results file
    with pytest.raises(DataError, match=r"results.json: expected a JSON list of samples \(Kang et al.'s"):
        list(make_task("esconv_strategy", {}, str(tmp_path)).load_samples())


def test_real_files_auto_reads_kangs_set_not_the_failed_dialogues_beside_it(capsys):
    """The shared folder holds FailedESConv.json beside Kang's file: auto used to pick the failed set."""
    path = shared_dataset("esconv", "kang2024_results.json")
    shared_dataset("esconv", "FailedESConv.json")
    task = make_task("esconv_strategy", {}, str(path.parent))
    assert len(list(task.load_samples())) == 1611 and task.load_report["source"] == "kang2024"
    assert f"reading {path} (source=kang2024)" in capsys.readouterr().err


# ---- macro-F1 over the labels present ---------------------------------------------------------------
def test_macro_f1_on_a_subset_is_reported_over_the_labels_present_and_over_all_eight(tmp_path):
    gold = ["Question", "Question", "Reflection of Feelings", "Others"]
    pred = ["Question", "Reflection of Feelings", "Reflection of Feelings", "Question"]
    report = esconv.strategy_report(gold, pred)
    # by hand: F1 Question 1/2, Reflection 2/3, Others 0 (sklearn's macro average over these three)
    assert report["labels_present"] == ["Question", "Reflection of Feelings", "Others"]
    assert report["macro_f1_present"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert report["macro_f1"] == pytest.approx((1 / 2 + 2 / 3) / 8)
    # and in a run's results: the fixture's 8 items have 4 gold strategies
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--model",
                "random",
                "--tasks",
                "esconv_strategy",
                "--task-arg",
                "source=kang2024",
                "--data-dir",
                DATA,
                "-q",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "results.json").read_text())["results"][0]
    present = result["details"]["labels_present"]
    assert result["metrics"]["macro_f1_present"]["n"] == 8 and set(present) <= set(esconv.STRATEGIES)
    assert result["metrics"]["macro_f1_present"]["value"] >= result["metrics"]["macro_f1"]["value"]


def test_macro_f1_present_is_kangs_q_on_the_full_set_and_sklearns_on_a_subset():
    rows = json.loads(shared_dataset("esconv", "kang2024_results.json").read_text())
    report = esconv.strategy_report([r["strg_gold"] for r in rows], [r["strg_pred"] for r in rows])
    assert report["macro_f1_present"] == report["macro_f1"]
    assert round(100 * report["macro_f1_present"], 1) == 21.9
    first = rows[:20]  # a subset where one strategy is absent: 29.2 over the 7 present, 25.6 over all 8
    sub = esconv.strategy_report([r["strg_gold"] for r in first], [r["strg_pred"] for r in first])
    assert len(sub["labels_present"]) == 7 and round(100 * sub["macro_f1"], 1) == 25.6
    assert round(100 * sub["macro_f1_present"], 1) == 29.2
    sklearn = pytest.importorskip("sklearn.metrics")  # Kang's scorer calls f1_score(average="macro")
    assert sub["macro_f1_present"] == pytest.approx(
        sklearn.f1_score(
            [r["strg_gold"].lower() for r in first], [r["strg_pred"].lower() for r in first], average="macro"
        )
    )
