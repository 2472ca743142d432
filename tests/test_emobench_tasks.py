"""EmoBench EU/EA tasks: loaders (real files and fixtures), protocols, parsing, a loopback run end to
end, and the reference baselines landing on chance."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from emobench.cli import main
from emobench.errors import ConfigError, DataError
from emobench.metrics import wilson
from emobench.registry import make_task
from tests.conftest import FIXTURES, shared_dataset

FIX = FIXTURES / "emobench"


def _task(name: str, data_dir: Path = FIX, **args):
    return make_task(name, args, str(data_dir))


# ---- loaders ------------------------------------------------------------------------------------
def test_fixture_loaders_turn_labels_into_indices():
    ea = list(_task("emobench_ea").load_samples())
    assert [s.id for s in ea] == ["en-1", "en-2", "en-3", "en-4"]
    assert ea[0].choices[ea[0].target] == "Ask her manager what she can carry into the new direction"
    assert ea[0].metadata["question_type"] == "Action"
    eu = list(_task("emobench_eu").load_samples())
    assert eu[0].target == {"emotion": 4, "cause": 0}
    assert eu[3].metadata["causes"][0] == "He followed his custom and lost the slice"


def test_language_selection():
    assert [s.id for s in _task("emobench_ea", lang="zh").load_samples()] == ["zh-1", "zh-2"]
    assert len(list(_task("emobench_eu", lang="all").load_samples())) == 6
    with pytest.raises(ConfigError, match="lang must be"):
        _task("emobench_ea", lang="fr")


def test_real_files_have_200_items_per_language():
    folder = shared_dataset("emobench", "EU.jsonl").parent
    for name in ("emobench_eu", "emobench_ea", "emobench_eu_emotion"):
        for lang in ("en", "zh"):
            samples = list(_task(name, folder, lang=lang).load_samples())
            assert len(samples) == 200 == _task(name, folder).size
    eu_en = list(_task("emobench_eu", folder).load_samples())
    cats = {
        c: sum(s.metadata["category"] == c for s in eu_en)
        for c in (
            "perspective_taking",
            "personal_beliefs_and_experiences",
            "complex_emotions",
            "emotional_cues",
        )
    }
    assert cats == {
        "perspective_taking": 67,
        "personal_beliefs_and_experiences": 56,
        "complex_emotions": 49,
        "emotional_cues": 28,
    }


def test_paper_protocol_asks_four_orders_that_keep_the_right_option():
    task = _task("emobench_eu", protocol="paper")
    samples = list(task.load_samples())
    assert len(samples) == 16 and task.draws == 5 and task.gen_params.temperature > 0
    first = [s for s in samples if s.id.startswith("en-1/")]
    assert [s.metadata["order"] for s in first] == [0, 1, 2, 3]
    right = {(s.choices[s.target["emotion"]], s.metadata["causes"][s.target["cause"]]) for s in first}
    assert right == {("Pride", "The judge valued her quick repair")}
    assert len({tuple(s.choices) for s in first}) > 1  # the orders really differ
    assert [s.id for s in task.load_samples()] == [s.id for s in samples]  # and are reproducible


def test_shuffle_is_seeded_and_keeps_ids():
    plain = list(_task("emobench_ea").load_samples())
    shuffled = list(_task("emobench_ea", shuffle=True).load_samples())
    assert [s.id for s in plain] == [s.id for s in shuffled]
    assert [s.choices for s in plain] != [s.choices for s in shuffled]
    assert all(a.choices[a.target] == b.choices[b.target] for a, b in zip(plain, shuffled, strict=True))
    again = list(_task("emobench_ea", shuffle=True).load_samples())
    assert [s.choices for s in again] == [s.choices for s in shuffled]


def _bad_copy(tmp_path: Path, name: str, line_no: int, edit) -> Path:
    shutil.copy(FIX / "EU.jsonl", tmp_path / "EU.jsonl")
    shutil.copy(FIX / "EA.jsonl", tmp_path / "EA.jsonl")
    lines = (tmp_path / name).read_text(encoding="utf-8").splitlines()
    lines[line_no - 1] = edit(lines[line_no - 1])
    (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    "task, file, edit, message",
    [
        ("emobench_ea", "EA.jsonl", lambda s: s[:-5], "invalid JSON"),
        ("emobench_ea", "EA.jsonl", lambda s: s.replace('"label"', '"lbl"'), "missing field(s) 'label'"),
        (
            "emobench_ea",
            "EA.jsonl",
            lambda s: re.sub(r'"label": ".*"}', '"label": "Run away"}', s),
            "label 'Run away' is not one of the options",
        ),
        (
            "emobench_eu",
            "EU.jsonl",
            lambda s: s.replace('"cause_label": "His', '"cause_label": "Her'),
            "cause_label",
        ),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, task, file, edit, message):
    folder = _bad_copy(tmp_path, file, 2, edit)
    with pytest.raises(DataError) as err:
        list(_task(task, folder).load_samples())
    assert message in str(err.value)
    assert err.value.path.endswith(file) and err.value.line == 2


def test_missing_file_in_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="EA.jsonl not found"):
        list(_task("emobench_ea", tmp_path).load_samples())


def test_hub_unreachable_offline_says_to_use_data_dir():
    with pytest.raises(DataError, match="--data-dir"):
        list(make_task("emobench_ea", {}, None).load_samples())


# ---- parsing ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reply, expected",
    [
        ('```json\n{"answer_q1": "E", "answer_q2": "A"}\n```', {"emotion": 4, "cause": 0}),
        ("Q1: B\nQ2: C", {"emotion": 1, "cause": 2}),
        ('{"answer_q1": "Pride", "answer_q2": "The storm was over"}', {"emotion": 4, "cause": 1}),
        ('<think>maybe A</think>{"answer_q1": "A"}', {"emotion": 0, "cause": None}),
        ("I cannot tell.", None),
        ('{"answer_q1": "Z", "answer_q2": "Q"}', None),
    ],
)
def test_eu_parser(reply, expected):
    task = _task("emobench_eu")
    sample = next(iter(task.load_samples()))
    assert task.parse(reply, sample) == expected


def test_eu_votes_on_each_question_separately_and_needs_both_right():
    task = _task("emobench_eu")
    sample = next(iter(task.load_samples()))
    voted = task.combine(
        [
            {"emotion": 4, "cause": None},
            {"emotion": 4, "cause": 1},
            None,
            {"emotion": 0, "cause": 0},
            {"emotion": 2, "cause": 0},
        ]
    )
    assert voted == {"emotion": 4, "cause": 0}
    assert task.score(voted, sample) == 1.0
    assert task.score({"emotion": 4, "cause": 1}, sample) == 0.0
    assert _task("emobench_eu_emotion").score({"emotion": 4, "cause": 1}, sample) == 1.0
    assert task.combine([None, None]) is None


def test_format_answer_round_trips_through_the_parser():
    for name in ("emobench_eu", "emobench_ea"):
        task = _task(name)
        for sample in task.load_samples():
            for answer in task.answer_space(sample):
                assert task.parse(task.format_answer(answer, sample), sample) == answer


# ---- end to end ---------------------------------------------------------------------------------
def _oracle(task_name: str):
    """A loopback 'model' that answers every item right (found by its scenario text)."""
    task = _task(task_name, lang="all")
    by_scenario = {s.metadata["scenario"]: s for s in task.load_samples()}

    def answer(messages):
        text = messages[-1]["content"]
        for scenario, s in by_scenario.items():
            if scenario in text:
                options = [line[3:] for line in text.splitlines() if re.match(r"^[A-Z]\) ", line)]
                if task_name == "emobench_ea":
                    return json.dumps({"answer": chr(65 + options.index(s.choices[s.target]))})
                n = len(s.choices)
                emo = options[:n].index(s.choices[s.target["emotion"]])
                cause = options[n:].index(s.metadata["causes"][s.target["cause"]])
                return json.dumps({"answer_q1": chr(65 + emo), "answer_q2": chr(65 + cause)})
        return "no idea"

    return answer


@pytest.mark.parametrize("task_name", ["emobench_ea", "emobench_eu"])
def test_run_end_to_end_against_loopback_server(make_server, tmp_path, capsys, task_name):
    server = make_server(answer_fn=_oracle(task_name))
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            "--model",
            "openai/loopback",
            "--base-url",
            server.base_url,
            "--tasks",
            task_name,
            "--data-dir",
            str(FIX),
            "--task-arg",
            "lang=all",
            "--task-arg",
            "shuffle=true",
            "--limit",
            "5",
            "-o",
            str(out),
            "-q",
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    entry = results["results"][0]
    assert entry["n_samples"] == 5 and entry["metrics"]["accuracy"]["value"] == 1.0
    assert server.state.snapshot()["requests"] == 5
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all(r["outcome"] == "correct" for r in records)


def test_paper_protocol_run_asks_five_draws_and_reports_orders(make_server, tmp_path):
    server = make_server(answer_fn=_oracle("emobench_ea"))
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--model",
                "openai/loopback",
                "--base-url",
                server.base_url,
                "--tasks",
                "emobench_ea",
                "--data-dir",
                str(FIX),
                "--task-arg",
                "protocol=paper",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    entry = json.loads((out / "results.json").read_text())["results"][0]
    assert server.state.snapshot()["requests"] == 4 * 4 * 5  # items x orders x draws
    assert entry["metrics"]["accuracy"] == {**entry["metrics"]["accuracy"], "value": 1.0, "n": 4}
    # strict accuracy is averaged like the headline: over orders, n = items (not items x orders)
    assert entry["metrics"]["strict_accuracy"] == {
        **entry["metrics"]["strict_accuracy"],
        "value": 1.0,
        "n": 4,
    }
    assert set(entry["details"]["accuracy_by_order"]) == {"0", "1", "2", "3"}
    assert entry["details"]["protocol"] == "paper"


def test_paper_protocol_draws_follow_the_run_seed_end_to_end(make_server, tmp_path):
    """`--seed` reaches the paper protocol's sampled draws: the same seed is served from the cache with
    the same replies, another seed asks again and gets other draws (the loopback server's hashed
    letters depend on a sampled request's seed)."""
    server = make_server()

    def run_with(seed: int) -> dict[str, str]:
        out = tmp_path / f"run-{seed}-{server.state.snapshot()['requests']}"
        args = ["run", "--model", "openai/loopback", "--base-url", server.base_url, "--tasks"]
        args += ["emobench_ea", "--data-dir", str(FIX), "--task-arg", "protocol=paper", "--seed", str(seed)]
        assert main([*args, "-o", str(out), "-q"]) == 0
        records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        return {r["key"]: r["response"] for r in records}

    first = run_with(1)
    assert server.state.snapshot()["requests"] == 80  # 4 items x 4 orders x 5 draws
    assert len({body["seed"] for body in server.state.bodies}) == 80  # each draw its own seed
    assert run_with(1) == first and server.state.snapshot()["requests"] == 80  # all from the cache
    second = run_with(2)
    assert server.state.snapshot()["requests"] == 160
    assert second.keys() == first.keys() and second != first


def test_paper_protocol_counts_unparseable_items_not_draws(make_server, tmp_path):
    """Under the paper protocol an item is asked in 4 orders (a sample each) x 5 draws. Parse failures are
    counted per sample, so the rate is a share of the 16 samples (the two unreadable items' 8), never 8
    over the metric's n of 4 items (200%) nor a share of the 80 replies."""
    oracle = _oracle("emobench_ea")

    def answer(messages):  # the items about Priya and Dana get no readable answer in any order or draw
        text = messages[-1]["content"]
        return "I cannot tell." if "Priya" in text or "Dana " in text else oracle(messages)

    server = make_server(answer_fn=answer)
    out = tmp_path / "run"
    args = ["run", "--model", "openai/loopback", "--base-url", server.base_url, "--tasks", "emobench_ea"]
    assert main([*args, "--data-dir", str(FIX), "--task-arg", "protocol=paper", "-o", str(out), "-q"]) == 0
    entry = json.loads((out / "results.json").read_text())["results"][0]
    assert server.state.snapshot()["requests"] == 80
    assert entry["n_samples"] == 16 and entry["n_unparseable"] == 8
    assert entry["parse_failure_rate"] == pytest.approx(0.5)
    # the headline averages each item over its orders: two items right, the two unreadable ones wrong
    assert entry["metrics"]["accuracy"]["value"] == 0.5 and entry["metrics"]["accuracy"]["n"] == 4


# ---- baselines land on chance -------------------------------------------------------------------
def _baseline_accuracy(tmp_path, model: str, task: str, *extra: str) -> tuple[float, int]:
    folder = shared_dataset("emobench", "EA.jsonl").parent
    out = tmp_path / f"{model}-{task}-{len(list(tmp_path.iterdir()))}"
    assert (
        main(
            [
                "run",
                "--model",
                model,
                "--tasks",
                task,
                "--data-dir",
                str(folder),
                "-o",
                str(out),
                "-q",
                "--no-cache",
                *extra,
            ]
        )
        == 0
    )
    m = json.loads((out / "results.json").read_text())["results"][0]["metrics"]["accuracy"]
    return m["value"], m["n"]


def _chance(task_name: str) -> float:
    task = _task(task_name, shared_dataset("emobench", "EA.jsonl").parent)
    samples = list(task.load_samples())
    return sum(1 / len(task.answer_space(s)) for s in samples) / len(samples)


@pytest.mark.parametrize("task_name", ["emobench_ea", "emobench_eu", "emobench_eu_emotion"])
def test_random_baseline_is_within_ci_of_chance(tmp_path, task_name):
    """Pooled over 5 seeds (1000 answers), the random baseline's Wilson CI holds the chance rate."""
    values = [
        _baseline_accuracy(tmp_path, "random", task_name, "--model-arg", f"seed={seed}")[0]
        for seed in range(5)
    ]
    chance = (
        _chance("emobench_eu")
        if task_name == "emobench_eu"
        else (1 / 6 if task_name == "emobench_eu_emotion" else 0.25)
    )
    lo, hi = wilson(sum(values) * 200, 1000)
    assert lo <= chance <= hi, (values, chance)


def test_majority_baseline_is_the_majority_rate_and_chance_once_shuffled(tmp_path):
    folder = shared_dataset("emobench", "EA.jsonl").parent
    targets = [s.target for s in _task("emobench_ea", folder).load_samples()]
    majority_rate = max(targets.count(t) for t in set(targets)) / len(targets)
    value, n = _baseline_accuracy(tmp_path, "majority", "emobench_ea")
    assert value == pytest.approx(majority_rate)  # 0.37: the options' original order is not balanced
    value, n = _baseline_accuracy(tmp_path, "majority", "emobench_ea", "--task-arg", "shuffle=true")
    lo, hi = wilson(value * n, n)
    assert lo <= 0.25 <= hi


# ---- the authors' recorded outputs: rows matched to items by their options ----------------------
def _real_reference(task: str, model: str, order: str = "") -> Path:
    return shared_dataset("emobench", "reference_outputs", task, f"{model}-en{order}.csv")


def _option_set(options) -> frozenset[str]:
    """Options compared as the test sees them: case, punctuation and quote style ignored."""
    return frozenset(" ".join(re.sub(r"[\W_]+", " ", o.lower()).split()) for o in options)


def test_gpt4_ea_rows_33_to_187_get_their_own_scenario_and_category():
    """The dataset was reordered after the authors' GPT-4 EA files were written: row 33 of the CSV is
    item 187 and rows 34-187 are items 33-186, so attaching context by position is off by one there."""
    folder = _real_reference("EA", "gpt-4").parents[2]
    task = _task("emobench_ea", folder)
    items = {s.id: s for s in task.load_samples()}
    imported = task.read_reference_outputs([_real_reference("EA", "gpt-4")])
    assert [s.id for s, _ in imported][31:35] == ["en-32", "en-187", "en-33", "en-34"]
    assert len({s.id for s, _ in imported}) == 200
    for sample, _ in imported:
        item = items[sample.id]
        assert _option_set(sample.choices) == _option_set(item.choices) or sample.id in (
            "en-33",
            "en-38",
            "en-39",
            "en-192",
        )
        assert sample.metadata["scenario"] == item.metadata["scenario"]
        assert sample.metadata["category"] == item.metadata["category"]
        assert sample.metadata["question_type"] == item.metadata["question_type"]


def test_gpt4_eu_rows_get_their_own_category_in_every_order():
    folder = _real_reference("EU", "gpt-4").parents[2]
    task = _task("emobench_eu", folder, protocol="paper")
    items = {s.id: s for s in _task("emobench_eu", folder).load_samples()}
    imported = task.read_reference_outputs([_real_reference("EU", "gpt-4", k) for k in ("", "1", "2", "3")])
    assert len(imported) == 800
    for sample, _ in imported:
        item = items[sample.id.split("/")[0]]
        assert sample.metadata["category"] == item.metadata["category"]
        assert sample.metadata["scenario"] == item.metadata["scenario"]
        assert sample.choices[sample.target["emotion"]] == item.choices[item.target["emotion"]]


@pytest.mark.parametrize(
    "task, model, expected",
    [
        ("EU", "gpt-4", 59.75),
        ("EA", "gpt-4", 75.50),
        ("EU", "random", 2.62),
        ("EA", "random", 24.12),
    ],
)
def test_paper_figures_hold_with_the_dataset_at_hand(tmp_path, task, model, expected):
    from emobench.rescore import import_predictions

    files = [_real_reference(task, model, k) for k in ("", "1", "2", "3")]
    results = import_predictions(
        files,
        f"emobench_{task.lower()}",
        tmp_path / "run",
        model,
        {"protocol": "paper"},
        data_dir=str(files[0].parents[2]),
    )
    entry = results["results"][0]
    assert f"{entry['metrics']['accuracy']['value'] * 100:.2f}" == f"{expected:.2f}"
    assert len(entry["details"]["accuracy_by_category"]) == 4


def _reference_csv(tmp_path: Path, rows: list[str]) -> Path:
    header = (FIX / "ea-model-en.csv").read_text(encoding="utf-8").splitlines()[0]
    path = tmp_path / "reordered-en.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_reference_rows_in_another_order_and_with_retyped_quotes_find_their_items(tmp_path):
    rows = (FIX / "ea-model-en.csv").read_text(encoding="utf-8").splitlines()[1:]
    rows[3] = rows[3].replace("guest's", "guest’s")  # a curly apostrophe, as the authors' files have
    path = _reference_csv(tmp_path, [rows[3], rows[0], rows[2], rows[1]])
    imported = _task("emobench_ea").read_reference_outputs([path])
    assert [s.id for s, _ in imported] == ["en-4", "en-1", "en-3", "en-2"]
    assert [s.metadata["subject"] for s, _ in imported] == ["Sam", "Priya", "Dana", "Leo"]


@pytest.mark.parametrize(
    "rows, message",
    [
        (lambda r: [r[0], r[0]], "match the same item as line 2"),
        (
            lambda r: [r[0].replace("Quit on the spot", "Resign").replace("Pretend nothing", "Forget what")],
            "match no item of EA.jsonl",
        ),
    ],
)
def test_a_reference_row_without_a_unique_item_names_file_and_line(tmp_path, rows, message):
    path = _reference_csv(
        tmp_path, rows((FIX / "ea-model-en.csv").read_text(encoding="utf-8").splitlines()[1:])
    )
    with pytest.raises(DataError, match=message) as err:
        _task("emobench_ea").read_reference_outputs([path])
    assert err.value.path.endswith("reordered-en.csv") and err.value.line == len(rows(["x", "y"])) + 1


def test_without_the_dataset_reference_rows_get_ids_that_cannot_pass_for_items(tmp_path):
    """Offline and without --data-dir the items cannot be found: ids say they are row numbers."""
    imported = make_task("emobench_ea", {}, None).read_reference_outputs([FIX / "ea-model-en.csv"])
    assert [s.id for s, _ in imported] == ["en-row1", "en-row2", "en-row3", "en-row4"]
    assert imported[0][0].metadata["scenario"] == "(not recorded in the prediction file)"
