"""Disk full and unwritable output: one clear error line, and the samples finished before it intact
(the same command resumes them once the disk has room)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys

import pytest

from reliability_support import cli, write_task


def _limit_file_size(max_bytes: int):
    def apply() -> None:  # runs in the child: writes past max_bytes fail with EFBIG, like a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def test_disk_full_mid_run_gives_one_error_line_and_keeps_finished_samples(server, tmp_path):
    task = write_task(tmp_path / "task", 200)
    out = tmp_path / "run"
    args = [
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        server.base_url,
        "--task-file",
        str(task),
        "-q",
        "--no-cache",
        "-c",
        "4",
        "--output",
        str(out),
    ]
    full = subprocess.run(
        [sys.executable, "-m", "emobench.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size(60_000),
    )
    assert full.returncode == 2, full.stderr
    err_lines = full.stderr.strip().splitlines()
    assert len(err_lines) == 1 and "samples.jsonl" in err_lines[0] and "rerun to resume" in err_lines[0]
    raw = (out / "samples.jsonl").read_bytes()
    complete = [json.loads(line) for line in raw.split(b"\n")[:-1]]
    assert 0 < len(complete) < 200
    asked_before = server.state.requests
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 200 and len({json.loads(x)["key"] for x in lines}) == 200
    kept = {r["key"]: r["response"] for r in complete}
    final = {json.loads(x)["key"]: json.loads(x)["response"] for x in lines}
    assert all(final[k] == v for k, v in kept.items())
    assert server.state.requests - asked_before == 200 - len(complete)


def test_output_path_that_cannot_be_created_is_one_clear_error(server, tmp_path):
    task = write_task(tmp_path / "task", 3)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    res = cli(
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        server.base_url,
        "--task-file",
        str(task),
        "-q",
        "--output",
        str(blocker / "run"),
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "cannot create run directory" in res.stderr
    assert server.state.requests == 0


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root ignores directory permissions, so read-only cannot be "
    "simulated with chmod here (disk full and an uncreatable path are tested instead)",
)
def test_read_only_output_dir_is_one_clear_error(server, tmp_path):
    task = write_task(tmp_path / "task", 3)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = cli(
            "run",
            "--model",
            "openai/loopback",
            "--base-url",
            server.base_url,
            "--task-file",
            str(task),
            "-q",
            "--output",
            str(ro / "run"),
        )
    finally:
        ro.chmod(0o755)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "cannot" in res.stderr
