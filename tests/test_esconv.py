"""ESConv next-strategy prediction: Kang et al. (2024) metrics reproduced on their published
results file, the Bradley-Terry model, strategy-name normalisation, framing, splits, and a run."""

from __future__ import annotations

import inspect
import json

import pytest

from conftest import FIXTURES, shared_dataset
from emobench.cli import main
from emobench.errors import ConfigError, DataError
from emobench.metrics import bradley_terry, preference_bias
from emobench.registry import builtin_tasks, make_task

DATA = str(FIXTURES / "esconv")
esconv = inspect.getmodule(builtin_tasks()["esconv_strategy"])

# METHODS.md §2, Kang et al.'s own scorer on their results.json
KANG_PREFERENCES = [("Affirmation and Reassurance", 2.54), ("Providing Suggestions", 1.92),
                    ("Reflection of Feelings", 1.02), ("Others", 0.89), ("Question", 0.63),
                    ("Self-disclosure", 0.48), ("Restatement or Paraphrasing", 0.31), ("Information", 0.22)]


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
    dialogs = {split: {s.id.split("-")[1] for s in task.load_samples(split)} for split in ("train", "dev", "test")}
    assert (len(dialogs["train"]), len(dialogs["dev"]), len(dialogs["test"])) == (14, 3, 3)
    assert not (dialogs["train"] & dialogs["dev"]) and not (dialogs["dev"] & dialogs["test"])
    assert dialogs == {split: {s.id.split("-")[1] for s in task.load_samples(split)} for split in dialogs}
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


@pytest.mark.parametrize("reply, expected", [
    ('{"strategy": "Questions"}', "Question"),
    ('```json\n{"strategy": "reflection of feelings"}\n```', "Reflection of Feelings"),
    ("Answer: F", "Providing Suggestions"),
    ("I would go with Self-disclosure.", "Self-disclosure"),
    ("no idea", None),
])
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
    code = main(["run", "--model", "openai/m", "--base-url", server.base_url, "--tasks", "esconv_strategy",
                 "--task-arg", "source=kang2024", "--data-dir", DATA, "-q", "--output", str(out)])
    assert code == 0
    result = json.loads((out / "results.json").read_text())["results"][0]
    assert result["metrics"]["accuracy"]["value"] == 0.25
    details = result["details"]
    prefs = details["preference"]
    assert all(prefs["Affirmation and Reassurance"] > prefs[s] for s in ("Question", "Reflection of Feelings", "Others"))
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
