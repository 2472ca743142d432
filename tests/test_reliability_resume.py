"""SIGKILL a run at 20 random points (concurrency 16) and resume it each time with the same command:
the final samples.jsonl and results.json equal an uninterrupted run's (timing fields aside, see
reliability_support.SAMPLE_TIMING), no finished sample's request reaches the server again, and the
repeated requests of each resume never exceed what was in flight at the kill."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from emobench.testing.server import prompt_hash
from reliability_support import ServerProcess, results_without_timing, samples_without_timing, write_task

N, CONCURRENCY, KILLS = 1500, 16, 20


def _cmd(task, base_url, out):
    return [
        sys.executable,
        "-m",
        "emobench.cli",
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        base_url,
        "--task-file",
        str(task),
        "--concurrency",
        str(CONCURRENCY),
        "-q",
        "--output",
        str(out),
    ]


def _finished_hashes(run_dir) -> set[str]:
    """Server-side hashes of the requests of the samples written so far (complete lines only)."""
    path = run_dir / "samples.jsonl"
    if not path.exists():
        return set()
    out = set()
    for raw in path.read_bytes().split(b"\n")[:-1]:
        rec = json.loads(raw)
        content = rec["prompt"].split("\n", 1)[1]  # "[user]\n<content>": one user message
        out.add(prompt_hash([{"role": "user", "content": content}]))
    return out


def _repeats(before: Counter, after: Counter) -> int:
    """Requests in a segment whose prompt had been asked before (or twice within it)."""
    made = sum(after[h] - before.get(h, 0) for h in after)
    new = sum(1 for h in after if after[h] > 0 and before.get(h, 0) == 0)
    return made - new


@pytest.mark.slow
def test_sigkill_at_20_random_points_then_resume_equals_uninterrupted_run(tmp_path):
    task = write_task(tmp_path / "task", N)
    server = ServerProcess("--latency", "0.04", "--jitter", "0.02", "--seed", "5")
    out = tmp_path / "killed"
    try:
        env = {**os.environ, "EMOBENCH_CACHE_DIR": str(tmp_path / "cache-killed")}
        rng = random.Random(20240611)
        kills, total_repeats = 0, 0
        while True:
            finished = _finished_hashes(out)
            before = Counter(server.stats()["prompt_hashes"])
            proc = subprocess.Popen(
                _cmd(task, server.base_url, out),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if kills < KILLS:
                time.sleep(rng.uniform(0.3, 1.3))
            if kills < KILLS and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            _, err = proc.communicate(timeout=300)
            after = Counter(server.stats()["prompt_hashes"])
            asked = {h for h in after if after[h] > before.get(h, 0)}
            assert not asked & finished, f"segment {kills}: a finished sample was asked again"
            repeats = _repeats(before, after)
            assert repeats <= CONCURRENCY, f"segment {kills}: {repeats} repeated requests"
            total_repeats += repeats
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL, err
        assert kills == KILLS, f"the run finished after only {kills} kills"
        assert server.stats()["requests"] == N + total_repeats
        print(
            f"RESUME samples={N} kills={kills} concurrency={CONCURRENCY} repeated_requests={total_repeats} "
            f"max_repeats_per_resume<={CONCURRENCY} finished_samples_asked_again=0"
        )

        ref_env = {**os.environ, "EMOBENCH_CACHE_DIR": str(tmp_path / "cache-ref")}
        ref = subprocess.run(
            _cmd(task, server.base_url, tmp_path / "ref"),
            env=ref_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ref.returncode == 0, ref.stderr
    finally:
        server.stop()
    assert samples_without_timing(out) == samples_without_timing(tmp_path / "ref")
    assert results_without_timing(out) == results_without_timing(tmp_path / "ref")
