"""A canary API key in the environment is sent to the server but written nowhere: not in the run
directory, the cache, the logs (stdout/stderr), nor a built leaderboard site -- also when calls fail."""

from __future__ import annotations

import os
from pathlib import Path

from reliability_support import cli, write_task

CANARY = "sk-canary-7f3a9c2e51d04b8e9a6c"


def _files_containing(root: Path, needle: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


def test_canary_api_key_is_never_written(make_server, tmp_path):
    srv = make_server(fault_rate=0.3, faults=("500", "429", "truncated"), seed=2)
    task = write_task(tmp_path / "task", 40)
    env = {"OPENAI_API_KEY": CANARY, "MY_SERVICE_TOKEN": CANARY + "-2",
           "EMOBENCH_CACHE_DIR": str(tmp_path / "cache")}
    logs = []
    ok = cli("run", "--model", "openai/loopback", "--base-url", srv.base_url, "--task-file", str(task),
             "--output", str(tmp_path / "runs" / "ok"), "--max-retries", "8", env=env)
    assert ok.returncode == 0, ok.stderr
    logs += [ok.stdout, ok.stderr]
    # a failing run: errors carry messages from the HTTP layer, which must not echo the key
    srv.config.fault_rate = 1.0
    bad = cli("run", "--model", "openai/loopback", "--base-url", srv.base_url, "--task-file", str(task),
              "--output", str(tmp_path / "runs" / "bad"), "--max-retries", "1", "--no-cache", env=env)
    logs += [bad.stdout, bad.stderr]
    assert any(h == f"Bearer {CANARY}" for h in srv.state.auth_headers), "the key was really used"
    site = tmp_path / "site"
    config = tmp_path / "leaderboard.yaml"
    config.write_text(f"title: canary\nruns: [{tmp_path / 'runs' / 'ok'}]\n", encoding="utf-8")
    built = cli("leaderboard", "build", str(config), "--out", str(site), env=env)
    logs += [built.stdout, built.stderr]
    if built.returncode == 0:  # the leaderboard command exists and built the site: scan it too
        assert any(site.rglob("*.html")) or any(site.rglob("*.json"))
    for root in (tmp_path / "runs", tmp_path / "cache", site):
        assert _files_containing(root, CANARY) == [] if root.exists() else True
    assert (tmp_path / "runs" / "ok" / "samples.jsonl").exists()
    assert not any(CANARY in text for text in logs)
    assert os.environ.get("OPENAI_API_KEY") != CANARY  # the test process itself was not changed
