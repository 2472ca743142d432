"""The vignette tasks end to end against the loopback server, the baselines, and the AIPsy loader."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import FIXTURES
from emobench.audit import EMOTIONS, read_items
from emobench.battery import load_battery
from emobench.cli import main
from emobench.data import read_jsonl
from emobench.errors import ConfigError, DataError
from emobench.paths import tasks_dir
from emobench.registry import make_task

BATTERY = tasks_dir() / "vignettes" / "vignettes.jsonl"
_STORY = re.compile(r"Story: (.*?)(?:\n|$)", re.DOTALL)


def _items_by_text(items) -> dict:
    return {it.text: it for it in items}


def oracle(items, wrong_unless=lambda it: True):
    """A scripted model that knows the gold answers (for the items where `wrong_unless` holds; else it
    answers Joy / probability 0) of the stories in `items`, and gives no answer to any other story."""
    by_text = _items_by_text(items)

    def answer(messages):
        prompt = messages[-1]["content"]
        it = by_text.get(_STORY.search(prompt).group(1).strip())
        if it is None:  # a story it was not given: no answer
            return "I cannot say."
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
    res = run_cli(
        tmp_path, "--model", "openai/x", "--base-url", srv.base_url, "--tasks", "vignettes,vignettes_affect"
    )
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
    res = run_cli(
        tmp_path,
        "--model",
        "openai/x",
        "--base-url",
        server.base_url,
        "--tasks",
        "vignettes,vignettes_affect",
    )
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
    res = run_cli(
        tmp_path,
        "--model",
        "openai/x",
        "--base-url",
        srv.base_url,
        "--tasks",
        "vignettes,vignettes_affect",
        "--task-arg",
        "set=both",
    )
    m = res["vignettes"]["metrics"]
    assert m["accuracy"]["value"] == pytest.approx(8 / 64)  # it answers Joy on keyword-free items
    assert m["accuracy_keyword_rich"]["value"] == 1.0 and m["accuracy_keyword_rich"]["n"] == 16
    assert m["keyword_gap"]["value"] == pytest.approx(14 / 16) and m["keyword_gap"]["n"] == 16
    assert m["keyword_gap"]["ci_low"] > 0.5
    d = res["vignettes_affect"]["metrics"]
    assert d["auroc_keyword_rich"]["value"] == 1.0 and d["auroc"]["value"] < 1.0
    assert d["keyword_gap"]["value"] == 1.0


def test_keyword_rich_set_alone_is_the_headline_metric(tmp_path):
    res = run_cli(
        tmp_path,
        "--model",
        "random",
        "--tasks",
        "vignettes,vignettes_affect",
        "--task-arg",
        "set=keyword_rich",
    )
    assert res["vignettes"]["metrics"]["accuracy"]["n"] == 16
    assert res["vignettes_affect"]["metrics"]["auroc"]["n"] == 32
    assert "keyword_gap" not in res["vignettes"]["metrics"]


def test_set_argument_is_validated(tmp_path, capsys):
    with pytest.raises(ConfigError, match="set='nope'"):
        list(make_task("vignettes", {"set": "nope"}).load_samples())
    assert (
        main(
            [
                "run",
                "--model",
                "random",
                "--tasks",
                "vignettes",
                "--task-arg",
                "set=nope",
                "-o",
                str(tmp_path / "r"),
                "-q",
            ]
        )
        == 2
    )
    assert "choose one of keyword_free, keyword_rich, both" in capsys.readouterr().err


@pytest.mark.parametrize(
    "reply, value",
    [
        ('{"answer": "Yes", "probability": 85}', 85.0),
        ('```json\n{"answer": "No", "probability": "12.5"}\n```', 12.5),
        ('{"answer": "yes"}', 100.0),
        ("No. Nothing in the story suggests it.", 0.0),
        ('<think>maybe 99</think>{"probability": 70}', 70.0),
        ('{"probability": 250}', None),
        ("I cannot tell.", None),
        ("", None),
    ],
)
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
        return {
            "sample_id": f"{pair}-{kind}",
            "outcome": "correct",
            "score": float((parsed >= 50) == target),
            "parsed": parsed,
            "target": target,
            "metadata": {"kind": kind, "pair_id": pair},
            "trace": {"mode": "loglikelihood", "loglikelihoods": lls},
            "mode": "loglikelihood",
        }

    # every item is answered "No", but affect items are less sure of it than their controls
    records = [
        rec("affect", "p1", [-2.0, -1.0]),
        rec("neutral", "p1", [-5.0, -0.5]),
        rec("affect", "p2", [-1.5, -1.0]),
        rec("neutral", "p2", [-4.0, -1.0]),
    ]
    metrics, details = task.aggregate(records)
    assert metrics["auroc"].value == 1.0 and metrics["accuracy"].value == 0.5
    assert details["sign_test"]["wins"] == 2 and details["score_source"] == {"loglikelihood": 4}


# ---- AIPsy-Affect ---------------------------------------------------------------------------------------
AIPSY_SPLITS = ("clinical", "neutral", "moderate", "complex_neutral")
PRIMARY = {
    "rage": "anger",
    "terror": "fear",
    "grief": "sadness",
    "loathing": "disgust",
    "amazement": "surprise",
    "admiration": "trust",
    "ecstasy": "joy",
    "vigilance": "anticipation",
}


def aipsy_rows(split: str) -> list[dict]:
    """The original fixture rows (written for emobench, in AIPsy-Affect's documented columns)."""
    return [row for _, row in read_jsonl(FIXTURES / "aipsy" / f"{split}.jsonl")]


def write_aipsy(root: Path, folder: str = "data", edit=None) -> Path:
    """The fixture as the dataset's own files, <root>/<folder>/<split>.parquet; `edit(split, frame)` may
    change a split's frame before it is written."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    (root / folder).mkdir(parents=True, exist_ok=True)
    for split in AIPSY_SPLITS:
        frame = pd.DataFrame(aipsy_rows(split))
        frame = edit(split, frame) if edit else frame
        frame.to_parquet(root / folder / f"{split}.parquet")
    return root


def test_aipsy_reads_the_documented_columns_and_maps_peak_names_to_primaries(tmp_path):
    root = write_aipsy(tmp_path)
    samples = list(make_task("aipsy_affect", {}, data_dir=str(root)).load_samples())
    clinical = aipsy_rows("clinical")
    assert [s.id for s in samples] == [r["id"] for r in clinical]
    assert [s.metadata["category"] for s in samples] == [PRIMARY[r["emotion"]] for r in clinical]
    assert [s.metadata["label"] for s in samples] == [r["emotion"] for r in clinical]  # the dataset's names
    assert {s.metadata["category"] for s in samples} == set(EMOTIONS)
    assert samples[0].input == clinical[0]["text"] and samples[0].target == EMOTIONS.index("anger")
    moderate = list(make_task("aipsy_affect", {"subset": "moderate"}, data_dir=str(root)).load_samples())
    assert len(moderate) == 8 and moderate[0].id == "Bm-rage-d3-v1"
    assert moderate[0].metadata["category"] == "anger"


def test_aipsy_pairs_each_clinical_item_with_its_matched_control_id(tmp_path):
    """Every id ends in 1 (`B-rage-d1-v1`, `B-rage-d2-v1`, ...): pairing by the id's last number would
    collapse the 16 pairs into one; `matched_control_id` keeps them apart."""
    root = write_aipsy(tmp_path)
    detect = list(make_task("aipsy_affect_detect", {}, data_dir=str(root)).load_samples())
    assert len(detect) == 32 and sum(s.target for s in detect) == 16
    by_pair: dict[str, set[str]] = {}
    for s in detect:
        by_pair.setdefault(s.metadata["pair_id"], set()).add(s.id)
    assert len(by_pair) == 16
    assert by_pair["B-rage-d1-v1"] == {"B-rage-d1-v1", "N-rage-d1-c1"}
    assert by_pair["B-vigilance-d2-v1"] == {"B-vigilance-d2-v1", "N-vigilance-d2-c1"}
    other = list(
        make_task(
            "aipsy_affect_detect", {"affect": "moderate", "control": "complex_neutral"}, data_dir=str(root)
        ).load_samples()
    )
    assert len(other) == 12 and len({s.metadata["pair_id"] for s in other}) == 12  # no matched partners


@pytest.mark.parametrize(
    "folder, neutral_emotion", [("data", None), (".", "neutral"), ("aipsy-affect/data", None)]
)
def test_aipsy_data_dir_takes_the_files_flat_or_under_data(tmp_path, folder, neutral_emotion):
    """A local copy of the hub repository (`data/<split>.parquet`), the files alone, or the repository one
    folder down; whether neutral rows name their pair's emotion or `neutral` does not matter."""

    def edit(split, frame):
        if split == "neutral" and neutral_emotion:
            frame["emotion"] = neutral_emotion
        return frame

    root = write_aipsy(tmp_path, folder, edit)
    detect = list(make_task("aipsy_affect_detect", {}, data_dir=str(root)).load_samples())
    assert len({s.metadata["pair_id"] for s in detect}) == 16 and len(detect) == 32


def _edit_row(split_name: str, column: str, row: int, value):
    def edit(split, frame):
        if split == split_name:
            frame[column] = frame[column].astype(object)
            frame.loc[row, column] = value
        return frame

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda split, frame: frame.drop(columns=["text"]) if split == "clinical" else frame,
            r"clinical.parquet: missing column\(s\) 'text' \(columns found: id, emotion, intensity, domain, "
            r"domain_label, matched_control_id, word_count\)",
        ),
        (
            _edit_row("clinical", "emotion", 2, "happiness"),
            r"clinical.parquet:3: B-terror-d1-v1: emotion 'happiness' is not one of rage, terror, grief",
        ),
        (_edit_row("clinical", "text", 0, "  "), r"clinical.parquet:1: B-rage-d1-v1: empty text"),
        (
            _edit_row("clinical", "id", 2, "B-rage-d1-v1"),
            r"clinical.parquet:3: duplicate id 'B-rage-d1-v1' \(first seen on line 1\)",
        ),
        (
            _edit_row("neutral", "matched_control_id", 1, "B-rage-d1-v1"),
            r"neutral.parquet:2: N-rage-d2-c1: matched_control_id 'B-rage-d1-v1' is not a clinical item "
            r"whose matched_control_id names this one",
        ),
    ],
)
def test_aipsy_malformed_split_is_one_clear_error_naming_file_and_row(tmp_path, capsys, edit, message):
    root = write_aipsy(tmp_path, edit=edit)
    with pytest.raises(DataError, match=message):
        list(make_task("aipsy_affect_detect", {}, data_dir=str(root)).load_samples())
    assert (
        main(
            [
                "run",
                "--model",
                "random",
                "--tasks",
                "aipsy_affect_detect",
                "--data-dir",
                str(root),
                "-o",
                str(tmp_path / "r"),
                "-q",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("emobench: error: ") and "\n" not in err


def test_aipsy_runs_end_to_end_from_data_dir(tmp_path, make_server):
    root = write_aipsy(tmp_path)
    battery = load_battery("aipsy_affect", root)
    srv = make_server(answer_fn=oracle(battery.items))
    res = run_cli(
        tmp_path,
        "--model",
        "openai/x",
        "--base-url",
        srv.base_url,
        "--data-dir",
        str(root),
        "--tasks",
        "aipsy_affect,aipsy_affect_detect",
    )
    assert res["aipsy_affect"]["metrics"]["accuracy"]["value"] == 1.0
    assert res["aipsy_affect"]["details"]["dataset_labels"] == {p: n for n, p in PRIMARY.items()}
    assert res["aipsy_affect_detect"]["metrics"]["auroc"]["value"] == 1.0
    assert res["aipsy_affect_detect"]["details"]["sign_test"]["wins"] == 16


def test_aipsy_missing_files_or_network_are_clear_errors(tmp_path, capsys):
    code = main(
        [
            "run",
            "--model",
            "random",
            "--tasks",
            "aipsy_affect",
            "--data-dir",
            str(tmp_path),
            "-o",
            str(tmp_path / "r"),
            "-q",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert f"clinical.parquet not found under --data-dir {tmp_path}" in err
    assert "hf://keidolabs/aipsy-affect" in err
    code = main(["run", "--model", "random", "--tasks", "aipsy_affect", "-o", str(tmp_path / "r2"), "-q"])
    err = capsys.readouterr().err.strip()  # HF_HUB_OFFLINE is set in the tests: the hub cannot be reached
    assert code == 2 and "hf://keidolabs/aipsy-affect" in err and "--data-dir" in err and "\n" not in err


# ---- batteries: the shipped one, a user file, AIPsy-Affect -------------------------------------------
def _user_battery(path: Path) -> Path:
    """Two original pairs, one with a keyword-rich version, in the documented layout."""
    rows = [
        {
            "id": "u1a",
            "pair_id": "u1",
            "kind": "affect",
            "emotion": "fear",
            "text": "The lift stopped between floors and the lights went out. Ola pressed every button twice.",
        },
        {
            "id": "u1n",
            "pair_id": "u1",
            "kind": "neutral",
            "emotion": None,
            "text": "The lift stopped at the third floor and the doors slid open. Ola pressed 5.",
        },
        {
            "id": "u1k",
            "pair_id": "u1",
            "kind": "keyword_rich",
            "emotion": "fear",
            "text": "The lift stopped between floors and the lights went out. Terrified, Ola hit every button.",
        },
        {
            "id": "u2a",
            "pair_id": "u2",
            "kind": "affect",
            "emotion": "joy",
            "text": "Ben read the letter from the college and ran down the street to tell his mother.",
        },
        {
            "id": "u2n",
            "pair_id": "u2",
            "kind": "neutral",
            "emotion": None,
            "text": "Ben read the letter from the college and walked down the street to post the reply.",
        },
    ]
    if path.suffix == ".csv":
        header = "id,pair_id,kind,emotion,text\n"
        lines = [f'{r["id"]},{r["pair_id"]},{r["kind"]},{r["emotion"] or ""},"{r["text"]}"\n' for r in rows]
        path.write_text(header + "".join(lines), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_load_battery_returns_the_shipped_a_user_and_the_aipsy_battery(tmp_path):
    shipped = load_battery("vignettes")
    assert shipped.items == tuple(read_items(BATTERY)) and shipped.transfer == ()
    assert shipped.source == str(BATTERY) and all(it.label is None for it in shipped.items)
    user = load_battery(str(_user_battery(tmp_path / "mine.csv")))
    assert [(it.id, it.pair_id, it.kind, it.emotion) for it in user.items][:3] == [
        ("u1a", "u1", "affect", "fear"),
        ("u1n", "u1", "neutral", None),
        ("u1k", "u1", "keyword_rich", "fear"),
    ]
    aipsy = load_battery("aipsy_affect", write_aipsy(tmp_path / "hub"))
    kinds = Counter(it.kind for it in aipsy.items)
    assert kinds == {"affect": 16, "neutral": 16}
    assert {it.pair_id for it in aipsy.items if it.kind == "neutral"} == {
        it.id for it in aipsy.items if it.kind == "affect"
    }
    affect = [it for it in aipsy.items if it.kind == "affect"]
    assert all(it.emotion == PRIMARY[it.label] for it in affect)
    assert [it.id for it in aipsy.transfer] == [r["id"] for r in aipsy_rows("moderate")]
    assert {it.kind for it in aipsy.transfer} == {"affect"} and aipsy.transfer[0].label == "rage"
    assert aipsy.transfer[0].emotion == "anger"


def test_load_battery_refuses_an_unknown_name_with_the_choices(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"battery 'nope.jsonl': no such file, and not one of vignettes, "
        r"aipsy_affect",
    ):
        load_battery("nope.jsonl")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_battery_task_arg_runs_a_user_battery(tmp_path, make_server, suffix):
    path = _user_battery(tmp_path / f"mine{suffix}")
    srv = make_server(answer_fn=oracle(read_items(path)))
    res = run_cli(
        tmp_path,
        "--model",
        "openai/x",
        "--base-url",
        srv.base_url,
        "--tasks",
        "vignettes,vignettes_affect",
        "--task-arg",
        f"battery={path}",
        "--task-arg",
        "set=both",
    )
    assert res["vignettes"]["metrics"]["accuracy"]["n"] == 2
    assert res["vignettes"]["metrics"]["accuracy_keyword_rich"]["n"] == 1
    auroc = res["vignettes_affect"]["metrics"]["auroc"]
    assert auroc["value"] == 1.0 and auroc["n"] == 4
    manifest = json.loads((tmp_path / "run" / "results.json").read_text())["manifest"]
    assert manifest["tasks"]["vignettes"]["args"]["battery"] == str(path)  # the battery is part of the run


def test_battery_without_the_selected_items_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "affect_only.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "a",
                "pair_id": "a",
                "kind": "affect",
                "emotion": "joy",
                "text": "Ben read the letter and ran to tell his mother.",
            }
        )
        + "\n"
    )
    with pytest.raises(DataError, match=f"{path}: no affect item with a neutral control"):
        list(make_task("vignettes_affect", {"battery": str(path)}).load_samples())
    with pytest.raises(DataError, match=f"{path}: no keyword_rich items"):
        list(make_task("vignettes", {"battery": str(path), "set": "keyword_rich"}).load_samples())
    assert (
        main(
            [
                "run",
                "--model",
                "random",
                "--tasks",
                "vignettes",
                "--task-arg",
                "battery=missing.jsonl",
                "-o",
                str(tmp_path / "r"),
                "-q",
            ]
        )
        == 2
    )
    assert "battery 'missing.jsonl': no such file" in capsys.readouterr().err


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
