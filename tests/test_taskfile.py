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


@pytest.mark.parametrize("lines, message, line_no", [
    ([_row("1"), b"{not json}\n"], "invalid JSON", 2),
    ([_row("1"), b'{"id": "2", "text": "x"}\n'], "missing field", 2),
    ([_row("1"), _row("1")], "duplicate id '1'", 2),
    ([_row("1"), _row("2", label="boredom")], "unknown label 'boredom'", 2),
    ([_row("1"), b'{"id": "2", "text": "caf\xe9", "label": "joy"}\n'], "not valid UTF-8", 2),
    ([], "file is empty", None),
    ([_row("1"), b"[1, 2]\n"], "expected a JSON object", 2),
])
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
    code = main(["run", "--model", "random", "--task-file", str(path), "-q", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "rows.jsonl:2" in err and "Traceback" not in err


def test_bad_yaml_keys_are_refused(tmp_path):
    (tmp_path / "t.yaml").write_text("name: t\ndata: x.jsonl\nfields: {input: a, target: b}\nlabels: [a, b]\n"
                                     "template: '{{ input }}'\nmetrik: [accuracy]\n")
    with pytest.raises(ConfigError, match="unknown key"):
        task_class_from_file(tmp_path / "t.yaml")


def test_sandbox_refuses_python_internals(tmp_path, server):
    path = _task_with_rows(tmp_path, [_row("1")])
    text = path.read_text().replace("{{ input }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    path.write_text(text)
    code = main(["run", "--model", "openai/m", "--base-url", server.base_url, "--task-file", str(path), "-q",
                 "--output", str(tmp_path / "run")])
    assert code == 2
    assert server.state.requests == 0


def test_task_file_runs_end_to_end_with_macro_f1(tmp_path, server):
    out = tmp_path / "run"
    code = main(["run", "--model", "openai/m", "--base-url", server.base_url, "--task-file", str(FIXTURE),
                 "-q", "--output", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    entry = results["results"][0]
    assert set(entry["metrics"]) - {"strict_accuracy"} == {"accuracy", "macro_f1"}  # strict: the parse policy
    assert entry["n_samples"] == 6 and server.state.requests == 6
    m = entry["metrics"]["accuracy"]
    assert m["ci_low"] <= m["value"] <= m["ci_high"] and m["n"] == 6


def _records(gold: list[int], pred: list[int | None]) -> list[dict]:
    return [{"sample_id": str(i), "target": g, "parsed": p, "score": float(g == p),
             "outcome": "correct" if g == p else ("unparseable" if p is None else "incorrect"), "metadata": {}}
            for i, (g, p) in enumerate(zip(gold, pred, strict=True))]


def test_macro_f1_averages_over_every_declared_label(tmp_path):
    """labels: [joy, sadness, anger, fear]; gold uses only joy and sadness. A declared label nobody
    predicted nor gave as gold still counts (F1 0), as sklearn's f1_score(labels=...) does."""
    path = tmp_path / "task.yaml"
    path.write_text(FIXTURE.read_text().replace("metrics: [accuracy, macro_f1]",
                                                "metrics: [macro_f1, weighted_f1]").replace(
        "data: feelings.jsonl", f"data: {FIXTURE.parent / 'feelings.jsonl'}"))
    task = task_class_from_file(path)()
    metrics, _ = task.aggregate(_records([0, 0, 1, 1], [0, 0, 1, 2]))
    sadness = 2 * 1.0 * 0.5 / 1.5
    assert metrics["macro_f1"].value == pytest.approx((1.0 + sadness + 0 + 0) / 4)
    assert metrics["weighted_f1"].value == pytest.approx((2 * 1.0 + 2 * sadness) / 4)
    perfect, _ = task.aggregate(_records([0, 0, 1, 1], [0, 0, 1, 1]))
    assert perfect["macro_f1"].value == pytest.approx(0.5)  # anger and fear: never present, F1 0
