"""One run directory, one process: a second `emobench run` on a directory in use stops with one line
naming the process that holds it; the lock goes with its process, so a SIGKILLed run leaves none and
the same command resumes it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from emobench.manifest import RunConfig
from emobench.runner import run
from emobench.runstore import RunDirError, RunStore
from reliability_support import cli, write_task

N = 30


def _wait_for_first_sample(runs_root, proc, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        for path in runs_root.glob("*/samples.jsonl"):
            if path.read_bytes().count(b"\n") >= 1:
                return path.parent
        time.sleep(0.1)
    raise AssertionError("the first run wrote no sample")


def test_second_process_is_refused_and_a_killed_run_leaves_no_lock(server, tmp_path):
    server.config.latency = 1.0  # the first run is still running when the second one starts
    task = write_task(tmp_path / "task", N)
    args = [
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        server.base_url,
        "--task-file",
        str(task),
        "-q",
        "-c",
        "1",
        "--no-cache",
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "emobench.cli", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_dir = _wait_for_first_sample(tmp_path / "runs", first)
        second = cli(*args, cwd=tmp_path)  # the same command: it finds the same unfinished directory
        err = second.stderr.strip()
        assert second.returncode == 2 and "\n" not in err, err
        assert str(run_dir.name) in err and f"pid {first.pid}" in err and "in use" in err, err
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    server.config.latency = 0.0
    third = cli(*args, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]
    keys = [json.loads(line)["key"] for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == N
    results = json.loads((run_dir / "results.json").read_text())
    assert results["run"]["complete"] is True and results["run"]["n_missing"] == 0


def test_run_on_a_directory_locked_by_another_holder_stops_before_any_call(server, tmp_path):
    task = write_task(tmp_path / "task", 3)
    out = tmp_path / "run"
    busy = rf"in use by another emobench run \(pid {os.getpid()} "
    with RunStore(out).locked(), pytest.raises(RunDirError, match=busy):
        asyncio.run(
            run(
                RunConfig(
                    model="openai/loopback", base_url=server.base_url, task_files=[str(task)], output=str(out)
                )
            )
        )
    assert server.state.requests == 0 and not (out / "samples.jsonl").exists()
