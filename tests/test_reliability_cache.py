"""Two processes running at once against one cache directory: both finish, the SQLite file stays
intact, and a third run is answered entirely from it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

from reliability_support import write_task


def test_two_processes_sharing_one_cache_do_not_corrupt_it(make_server, tmp_path):
    srv = make_server(latency=0.005)
    task = write_task(tmp_path / "task", 300)
    env = {**os.environ, "EMOBENCH_CACHE_DIR": str(tmp_path / "shared-cache")}

    def start(name):
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emobench.cli",
                "run",
                "--model",
                "openai/loopback",
                "--base-url",
                srv.base_url,
                "--task-file",
                str(task),
                "-c",
                "16",
                "-q",
                "--output",
                str(tmp_path / name),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    procs = [start("a"), start("b")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    db = sqlite3.connect(tmp_path / "shared-cache" / "responses.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 300
    db.close()
    for name in ("a", "b"):
        lines = (tmp_path / name / "samples.jsonl").read_text().splitlines()
        assert len(lines) == 300 and len({json.loads(x)["key"] for x in lines}) == 300
    asked = srv.state.requests
    assert 300 <= asked <= 600
    third = subprocess.run(
        [
            sys.executable,
            "-m",
            "emobench.cli",
            "run",
            "--model",
            "openai/loopback",
            "--base-url",
            srv.base_url,
            "--task-file",
            str(task),
            "-q",
            "--output",
            str(tmp_path / "c"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert third.returncode == 0, third.stderr
    assert srv.state.requests == asked, "the third run was served from the shared cache"
