"""Helpers shared by tests/test_reliability_*.py: a generated no-code task, the CLI in a subprocess, the
loopback server in its own process, and comparing run directories without their timing fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from emobench.testing.workload import write_workload

# Fields that describe how a run went rather than what it measured. Per sample: wall time, and the
# usage accounting of *this process* (a request answered before a kill is served from the cache after
# it, so it counts as a cached call with no tokens or cost instead of a model call). Per run: start time,
# wall time, directory and the retry counters of the last process.
SAMPLE_TIMING = {"latency_s", "calls", "cached_calls", "prompt_tokens", "completion_tokens", "cost_usd"}
RUN_TIMING = {"started", "wall_s", "run_dir", "retries", "failed_calls"}


def write_task(folder: Path, n: int, name: str = "rel_task") -> Path:
    return write_workload(folder, n, name, metrics=("accuracy", "macro_f1"))


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300, **kw: Any):
    """`python -m emobench.cli ARGS` in a subprocess with the test's environment (its cache dir)."""
    return subprocess.run(
        [sys.executable, "-m", "emobench.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        **kw,
    )


class ServerProcess:
    """The loopback server in its own process (a SIGKILLed harness must not take the server with it)."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emobench.testing.server", "--max-seconds", "600", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = json.loads(self.proc.stdout.readline())["base_url"]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/stats", timeout=30) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def samples_without_timing(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    return [{k: v for k, v in r.items() if k not in SAMPLE_TIMING} for r in rows]


def results_without_timing(run_dir: Path) -> dict[str, Any]:
    res = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    res["run"] = {k: v for k, v in res["run"].items() if k not in RUN_TIMING}
    for entry in res["results"]:
        entry.pop("usage", None)
    return res
