"""No-code YAML tasks: they run end to end, and bad files get one clear line naming file and line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emobench.cli import main
from emobench.errors import ConfigError, DataError
from emobench.taskfile import task_class_from_file

FIXTURE = Path(__file__).parent / "fixtures" / "custom" / "feelings.yaml"


def _task_with_rows(tmp_path: Path, lines: list[bytes], suffix: str = ".jsonl") -> Path:
    shutil.copy(FIXTURE, tmp_path / "task.yaml")
    text = (tmp_path / "task.yaml").read_text().replace("feelings.jsonl", f"rows{suffix}")
    (tmp_path / "task.yaml").write_text(text)
    (tmp_path / f"rows{suffix}").write_bytes(b"".join(lines))
    return tmp_path / "task.yaml"


def _row(i: str, text: str = "x", label: str = "joy") -> bytes:
    return (json.dumps({"id": i, "text": text, "label": label}) + "\n").encode()


def test_task_file_loads_samples_with_label_indices():
    task = task_class_from_file(FIXTURE)()
    samples = list(task.load_samples())
    assert len(samples) == 6
    assert samples[0].choices == ["joy", "sadness", "anger", "fear"]
    assert samples[1].target == 1


@pytest.mark.parametrize(
    "lines, message, line_no",
    [
        ([_row("1"), b"{not json}\n"], "invalid JSON", 2),
        ([_row("1"), b'{"id": "2", "text": "x"}\n'], "missing field", 2),
        ([_row("1"), _row("1")], "duplicate id '1'", 2),
        ([_row("1"), _row("2", label="boredom")], "unknown label 'boredom'", 2),
        ([_row("1"), b'{"id": "2", "text": "caf\xe9", "label": "joy"}\n'], "not valid UTF-8", 2),
        ([], "file is empty", None),
        ([_row("1"), b"[1, 2]\n"], "expected a JSON object", 2),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, lines, message, line_no):
    path = _task_with_rows(tmp_path, lines)
    task = task_class_from_file(path)()
    with pytest.raises(DataError) as err:
        list(task.load_samples())
    assert message in str(err.value)
    assert err.value.path.endswith("rows.jsonl")
    assert err.value.line == line_no


def test_csv_rows_with_wrong_field_count(tmp_path):
    path = _task_with_rows(tmp_path, [b"id,text,label\n", b"1,hello,joy\n", b"2,oops\n"], ".csv")
    with pytest.raises(DataError) as err:
        list(task_class_from_file(path)().load_samples())
    assert err.value.line == 3


def test_cli_reports_bad_file_in_one_line_without_traceback(tmp_path, capsys):
    path = _task_with_rows(tmp_path, [_row("1"), b"{oops\n"])
    code = main(
        ["run", "--model", "random", "--task-file", str(path), "-q", "--output", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "rows.jsonl:2" in err and "Traceback" not in err


def test_bad_yaml_keys_are_refused(tmp_path):
    (tmp_path / "t.yaml").write_text(
        "name: t\ndata: x.jsonl\nfields: {input: a, target: b}\nlabels: [a, b]\n"
        "template: '{{ input }}'\nmetrik: [accuracy]\n"
    )
    with pytest.raises(ConfigError, match="unknown key"):
        task_class_from_file(tmp_path / "t.yaml")


def test_sandbox_refuses_python_internals(tmp_path, server):
    path = _task_with_rows(tmp_path, [_row("1")])
    text = path.read_text().replace("{{ input }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    path.write_text(text)
    code = main(
        [
            "run",
            "--model",
            "openai/m",
            "--base-url",
            server.base_url,
            "--task-file",
            str(path),
            "-q",
            "--output",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    assert server.state.requests == 0


def test_task_file_runs_end_to_end_with_macro_f1(tmp_path, server):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--model",
            "openai/m",
            "--base-url",
            server.base_url,
            "--task-file",
            str(FIXTURE),
            "-q",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    entry = results["results"][0]
    assert set(entry["metrics"]) - {"strict_accuracy"} == {"accuracy", "macro_f1"}  # strict: the parse policy
    assert entry["n_samples"] == 6 and server.state.requests == 6
    m = entry["metrics"]["accuracy"]
    assert m["ci_low"] <= m["value"] <= m["ci_high"] and m["n"] == 6


def _records(gold: list[int], pred: list[int | None]) -> list[dict]:
    return [
        {
            "sample_id": str(i),
            "target": g,
            "parsed": p,
            "score": float(g == p),
            "outcome": "correct" if g == p else ("unparseable" if p is None else "incorrect"),
            "metadata": {},
        }
        for i, (g, p) in enumerate(zip(gold, pred, strict=True))
    ]


def test_macro_f1_averages_over_every_declared_label(tmp_path):
    """labels: [joy, sadness, anger, fear]; gold uses only joy and sadness. A declared label nobody
    predicted nor gave as gold still counts (F1 0), as sklearn's f1_score(labels=...) does."""
    path = tmp_path / "task.yaml"
    path.write_text(
        FIXTURE.read_text()
        .replace("metrics: [accuracy, macro_f1]", "metrics: [macro_f1, weighted_f1]")
        .replace("data: feelings.jsonl", f"data: {FIXTURE.parent / 'feelings.jsonl'}")
    )
    task = task_class_from_file(path)()
    metrics, _ = task.aggregate(_records([0, 0, 1, 1], [0, 0, 1, 2]))
    sadness = 2 * 1.0 * 0.5 / 1.5
    assert metrics["macro_f1"].value == pytest.approx((1.0 + sadness + 0 + 0) / 4)
    assert metrics["weighted_f1"].value == pytest.approx((2 * 1.0 + 2 * sadness) / 4)
    perfect, _ = task.aggregate(_records([0, 0, 1, 1], [0, 0, 1, 1]))
    assert perfect["macro_f1"].value == pytest.approx(0.5)  # anger and fear: never present, F1 0


# ---- parser / scorer references ---------------------------------------------------------------------
HELPERS = '''
def parse_feeling(text, sample):
    """'feeling: <label>' anywhere in the reply, else None."""
    head, _, tail = text.lower().partition("feeling:")
    return tail.strip().split()[0] if tail.strip() else None


def half_credit(parsed, sample):
    return 1.0 if parsed == sample.target else 0.5


NOT_A_FUNCTION = 3
'''


def _task_with_code(tmp_path: Path, **refs: str) -> Path:
    """The fixture task beside a helpers.py, with `parser:`/`scorer:` lines added."""
    path = tmp_path / "task.yaml"
    text = FIXTURE.read_text().replace("data: feelings.jsonl", f"data: {FIXTURE.parent / 'feelings.jsonl'}")
    path.write_text(text + "".join(f"{key}: {value!r}\n" for key, value in refs.items()))
    (tmp_path / "helpers.py").write_text(HELPERS)
    return path


def test_a_parser_and_scorer_in_a_file_beside_the_task_file_are_used(tmp_path):
    task = task_class_from_file(
        _task_with_code(tmp_path, parser="helpers.py:parse_feeling", scorer="helpers.py:half_credit")
    )()
    sample = list(task.load_samples())[1]  # gold: sadness (index 1)
    assert task.parse("I think... Feeling: Sadness", sample) == 1  # an option's text -> its index
    assert task.parse("no idea", sample) is None
    assert task.score(1, sample) == 1.0 and task.score(0, sample) == 0.5
    with pytest.raises(NotImplementedError):  # a parser of its own: no strict reading claimed
        task.parse_strict("Feeling: sadness", sample)


def test_a_task_file_with_parser_and_scorer_runs_end_to_end(tmp_path, server):
    server.config.answers = {"": "My answer. Feeling: joy"}
    path = _task_with_code(tmp_path, parser="helpers.py:parse_feeling", scorer="helpers.py:half_credit")
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--model",
                "openai/m",
                "--base-url",
                server.base_url,
                "--task-file",
                str(path),
                "-q",
                "--no-cache",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    entry = json.loads((out / "results.json").read_text())["results"][0]
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    gold_joy = sum(r["target"] == 0 for r in records)
    assert entry["n_unparseable"] == 0 and all(r["parsed"] == 0 for r in records)
    assert entry["metrics"]["accuracy"]["value"] == pytest.approx((gold_joy + 0.5 * (6 - gold_joy)) / 6)
    assert "strict_accuracy" not in entry["metrics"]


def test_a_parser_in_an_importable_module(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "my_emo_scorers"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "rules.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    task = task_class_from_file(_task_with_code(tmp_path, parser="my_emo_scorers.rules:parse_feeling"))()
    assert task.parse("feeling: anger", list(task.load_samples())[0]) == 2


def test_the_code_of_a_parser_is_part_of_the_template_hash(tmp_path):
    plain = task_class_from_file(_task_with_code(tmp_path))()
    from emobench import prompts

    assert plain.template_hash() == prompts.template_hash(
        plain.template, plain.system_template, plain.instruction
    )  # no reference: as before
    with_parser = task_class_from_file(_task_with_code(tmp_path, parser="helpers.py:parse_feeling"))()
    assert with_parser.template_hash() != plain.template_hash()
    (tmp_path / "helpers.py").write_text(HELPERS + "\n# a changed helper file\n")
    edited = task_class_from_file(tmp_path / "task.yaml")()
    assert edited.template_hash() not in (with_parser.template_hash(), plain.template_hash())
    assert edited.parser_fn is not with_parser.parser_fn  # the edited file is imported anew


@pytest.mark.parametrize(
    "key, ref, words",
    [
        ("parser", "nothere.py:parse_feeling", ["parser", "no file", "nothere.py"]),
        ("parser", "helpers.py:parse_mood", ["parser", "has no function 'parse_mood'"]),
        ("scorer", "helpers.py:NOT_A_FUNCTION", ["scorer", "is not callable"]),
        (
            "scorer",
            "no_such_module_xyz:score",
            ["scorer", "cannot import no_such_module_xyz", "ModuleNotFoundError"],
        ),
        ("parser", "broken.py:parse", ["parser", "cannot import broken.py", "ZeroDivisionError"]),
        ("parser", "parse_feeling", ["parser", "expected FILE.py:function or package.module:function"]),
    ],
    ids=[
        "missing-file",
        "missing-function",
        "not-callable",
        "missing-module",
        "raises-on-import",
        "no-colon",
    ],
)
def test_a_bad_code_reference_is_a_config_error_naming_file_and_key(tmp_path, key, ref, words):
    path = _task_with_code(tmp_path, **{key: ref})
    (tmp_path / "broken.py").write_text("def parse(text, sample):\n    return None\n\n\n1 / 0\n")
    with pytest.raises(ConfigError) as err:
        task_class_from_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: ") and all(w in message for w in words), message


def test_a_bad_code_reference_stops_the_cli_in_one_line(tmp_path, capsys):
    path = _task_with_code(tmp_path, parser="helpers.py:parse_mood")
    assert (
        main(["run", "--model", "random", "--task-file", str(path), "-q", "--output", str(tmp_path / "r")])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "parse_mood" in err and "Traceback" not in err
