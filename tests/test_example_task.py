"""The task newcomers copy (examples/tasks/feelings/): it stays short, runs end to end from
`--task-file`, and becomes a built-in task when its folder is copied into tasks/."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from emobench import registry
from emobench.cli import main
from emobench.data import read_jsonl

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tasks" / "feelings"
TASK_FILE = EXAMPLE / "task.py"
ITEMS = [row for _, row in read_jsonl(EXAMPLE / "items.jsonl")]


def _run(tmp_path: Path, *model: str) -> tuple[dict, list[dict]]:
    out = tmp_path / "run"
    assert main(["run", "--task-file", str(TASK_FILE), "-q", "--no-cache", "--output", str(out), *model]) == 0
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return json.loads((out / "results.json").read_text())["results"][0], records


def test_the_example_task_file_is_at_most_30_lines_everything_counted():
    assert len(TASK_FILE.read_text(encoding="utf-8").splitlines()) <= 30
    assert (EXAMPLE / "feelings.j2").is_file() and len(ITEMS) == 12


def test_the_example_runs_end_to_end_with_the_random_baseline(tmp_path):
    entry, records = _run(tmp_path, "--model", "random")
    assert entry["task"] == "example_feelings" and entry["n_samples"] == 12 and entry["n_errors"] == 0
    acc = entry["metrics"]["accuracy"]
    assert acc["n"] == 12 and 0.0 <= acc["ci_low"] <= acc["value"] <= acc["ci_high"] <= 1.0
    assert all(r["outcome"] in ("correct", "incorrect") for r in records)  # the baseline's replies parse
    assert "Story: " + ITEMS[0]["text"] in records[0]["prompt"]  # rendered from feelings.j2


def test_the_example_scores_a_model_that_knows_the_answers_at_100_percent(server, tmp_path):
    letters = {row["text"]: chr(65 + row["choices"].index(row["answer"])) for row in ITEMS}
    server.config.answer_fn = lambda messages: next(
        '{"answer": "%s"}' % letter for text, letter in letters.items() if text in messages[-1]["content"]
    )
    entry, _ = _run(tmp_path, "--model", "openai/loopback", "--base-url", server.base_url)
    assert entry["metrics"]["accuracy"]["value"] == 1.0 and entry["n_samples"] == 12


def test_the_example_folder_copied_into_tasks_is_a_builtin_task(tmp_path, monkeypatch):
    shutil.copytree(EXAMPLE, tmp_path / "tasks" / "feelings_copy")
    monkeypatch.setattr(registry, "tasks_dir", lambda: tmp_path / "tasks")
    registry.builtin_tasks.cache_clear()
    package = registry._tasks_package(tmp_path / "tasks")
    try:
        found = registry.builtin_tasks()
        assert list(found) == ["example_feelings"]
        assert found["example_feelings"].__module__ == "emobench_tasks.feelings_copy.task"
        assert len(list(found["example_feelings"]().load_samples())) == 12
    finally:
        registry.builtin_tasks.cache_clear()
        package.__path__.remove(str(tmp_path / "tasks"))
        for name in [n for n in sys.modules if n.startswith("emobench_tasks.feelings_copy")]:
            del sys.modules[name]
