"""1,000 calls against a server that fails 20% of them (429 with Retry-After, 500, 503, connection reset,
a hang past the timeout, truncated JSON, an empty choices list): every sample ends scored or as a
recorded `error`, none is lost or duplicated, and every fault costs exactly one retry."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from emobench.manifest import RunConfig
from emobench.runner import run
from emobench.testing.server import FAULTS
from reliability_support import write_task


def _config(task, out, base_url, **kw) -> RunConfig:
    return RunConfig(
        model="openai/loopback",
        base_url=base_url,
        task_files=[str(task)],
        output=str(out) if out else None,
        use_cache=False,
        **kw,
    )


@pytest.mark.slow
def test_thousand_calls_with_20_percent_faults_lose_and_duplicate_nothing(make_server, tmp_path):
    srv = make_server(fault_rate=0.2, retry_after=0.05, hang_seconds=3.0, seed=7)
    task = write_task(tmp_path / "task", 1000)
    run_dir, results = asyncio.run(
        run(
            _config(
                task,
                tmp_path / "run",
                srv.base_url,
                concurrency=32,
                timeout=0.5,
                max_retries=8,
                backoff_initial=0.01,
            )
        )
    )
    faults = srv.state.faults
    assert set(faults) == set(FAULTS), f"every fault kind injected: {dict(faults)}"
    assert sum(faults.values()) > 150
    records = [json.loads(line) for line in (run_dir / "samples.jsonl").open()]
    keys = Counter(r["sample_id"] for r in records)
    assert len(keys) == 1000 and max(keys.values()) == 1, "no sample lost or written twice"
    assert all(r["outcome"] in ("correct", "incorrect", "unparseable", "error") for r in records)
    n_errors = sum(r["outcome"] == "error" for r in records)
    assert results["run"]["n_errors"] == n_errors == results["results"][0]["n_errors"]
    assert results["results"][0]["n_samples"] == 1000
    # each injected fault made exactly one more request, and the client counted it as one retry
    assert srv.state.requests == 1000 + sum(faults.values())
    assert results["run"]["retries"] == sum(faults.values())


def test_calls_that_always_fail_become_recorded_errors_reported_in_results(make_server, tmp_path):
    srv = make_server(fault_rate=1.0, faults=("503",))
    task = write_task(tmp_path / "task", 20)
    run_dir, results = asyncio.run(
        run(
            _config(task, tmp_path / "run", srv.base_url, concurrency=4, max_retries=2, backoff_initial=0.001)
        )
    )
    records = [json.loads(line) for line in (run_dir / "samples.jsonl").open()]
    assert [r["outcome"] for r in records] == ["error"] * 20
    assert all("HTTP 503" in r["error"] for r in records)
    assert results["run"]["n_errors"] == 20 and results["run"]["complete"] is True  # every sample has a line
    assert results["run"]["failed_calls"] == 20 and srv.state.requests == 60
    # the same command retries only the failed samples once the server recovers
    srv.config.fault_rate = 0.0
    _, again = asyncio.run(run(_config(task, tmp_path / "run", srv.base_url, concurrency=4)))
    assert again["run"]["n_errors"] == 0 and again["run"]["complete"] is True
    assert srv.state.requests == 80


def test_retry_after_is_honoured_before_the_retry(make_server, tmp_path):
    srv = make_server(fault_rate=1.0, faults=("429",), retry_after=0.4)
    task = write_task(tmp_path / "task", 1)
    run_dir, results = asyncio.run(
        run(_config(task, tmp_path / "run", srv.base_url, max_retries=2, backoff_initial=0.001))
    )
    assert results["run"]["n_errors"] == 1 and srv.state.requests == 3 and results["run"]["retries"] == 2
    # two waits of Retry-After (0.4 s each) between the three attempts, not the 1 ms backoff
    record = json.loads((run_dir / "samples.jsonl").read_text())
    assert 0.8 <= record["latency_s"] < 3.0


def test_a_run_that_ended_with_errors_is_resumed_by_the_same_command_even_without_cache(
    make_server, tmp_path
):
    """No --output: the default run directory is found again (its state says `errors`, not `complete`)
    and only the samples whose calls failed are asked again."""
    srv = make_server(fault_rate=0.3, faults=("503",), seed=3)
    task = write_task(tmp_path / "task", 40)
    config = _config(task, None, srv.base_url, runs_root=str(tmp_path / "runs"), max_retries=0)
    run_dir, first = asyncio.run(run(config))
    n_errors = first["run"]["n_errors"]
    assert 0 < n_errors < 40 and srv.state.requests == 40
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "errors"
    srv.config.fault_rate = 0.0
    again_dir, again = asyncio.run(run(config))
    assert again_dir == run_dir and len(list((tmp_path / "runs").iterdir())) == 1
    assert srv.state.requests == 40 + n_errors, "only the errored samples were asked again"
    assert again["run"]["n_errors"] == 0 and again["run"]["complete"] is True
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
