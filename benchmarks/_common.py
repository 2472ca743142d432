"""Shared pieces of the benchmarks: the synthetic workload, the loopback server as a separate process,
and measuring a command's wall time and peak RSS.

Every harness is run as a subprocess, so its wall time includes its own start-up, and its peak RSS is
read from the kernel with `os.wait4` (the child's maximum resident set, no psutil needed).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emobench.testing.workload import write_workload as _write_workload

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
PEERS_VENV = ROOT / "benchmarks" / ".venv-peers"


def write_workload(folder: Path, n: int) -> Path:
    """The benchmark workload: `n` single-call items as a no-code task (see emobench.testing.workload)."""
    return _write_workload(folder, n, "bench_chat")


class ServerProcess:
    """`python -m emobench.testing.server` in its own process, so that the harness under test and the
    server do not share a GIL."""

    def __init__(self, latency: float = 0.2, jitter: float = 0.0, fault_rate: float = 0.0, seed: int = 0):
        args = [
            sys.executable,
            "-m",
            "emobench.testing.server",
            "--latency",
            str(latency),
            "--jitter",
            str(jitter),
            "--fault-rate",
            str(fault_rate),
            "--seed",
            str(seed),
            "--max-seconds",
            "7200",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        info = json.loads(line)
        self.base_url: str = info["base_url"]
        self.port: int = info["port"]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/stats", timeout=30) as resp:
            data = json.loads(resp.read())
        data.pop("prompt_hashes", None)
        return data

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.base_url}/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=30):
            pass

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    returncode: int
    output: str


def measure(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 1800.0
) -> Measured:
    """Run `cmd`, return its wall time and peak RSS (largest of the process and its waited children)."""
    full_env = {**os.environ, **(env or {})}
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - read back below
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    deadline = start + timeout
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.seek(0)
    output = log.read()
    log.close()
    return Measured(
        wall, rusage.ru_maxrss / 1024.0, rusage.ru_utime + rusage.ru_stime, proc.returncode, output
    )


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def machine_info() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "platform": sys.platform,
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def write_report(name: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    jpath, mpath = RESULTS_DIR / f"{name}.json", RESULTS_DIR / f"{name}.md"
    jpath.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    mpath.write_text(markdown, encoding="utf-8")
    return jpath, mpath
