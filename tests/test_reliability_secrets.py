"""A canary API key in the environment is sent to the server but written nowhere: not in the run
directory, the cache, the logs (stdout/stderr), nor a built leaderboard site -- also when calls fail."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from emobench.cache import request_key
from emobench.manifest import RunConfig
from emobench.models import make_backend
from emobench.models.base import public_args
from emobench.runner import run
from emobench.types import ChatRequest
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
    env = {
        "OPENAI_API_KEY": CANARY,
        "MY_SERVICE_TOKEN": CANARY + "-2",
        "EMOBENCH_CACHE_DIR": str(tmp_path / "cache"),
    }
    logs = []
    ok = cli(
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        srv.base_url,
        "--task-file",
        str(task),
        "--output",
        str(tmp_path / "runs" / "ok"),
        "--max-retries",
        "8",
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    logs += [ok.stdout, ok.stderr]
    # a failing run: errors carry messages from the HTTP layer, which must not echo the key
    srv.config.fault_rate = 1.0
    bad = cli(
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        srv.base_url,
        "--task-file",
        str(task),
        "--output",
        str(tmp_path / "runs" / "bad"),
        "--max-retries",
        "1",
        "--no-cache",
        env=env,
    )
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


def test_only_credential_names_are_redacted_never_settings():
    args = {
        "max_completion_tokens": 256,
        "max_tokens": 64,
        "top_k": 5,
        "cache_key": "run-a",
        "api_key": "sk-1",
        "HF_TOKEN": "hf-2",
        "extra_headers": {"Authorization": "Bearer 3", "anthropic-beta": "tools"},
    }
    assert public_args(args) == {
        "HF_TOKEN": "<redacted>",
        "api_key": "<redacted>",
        "cache_key": "run-a",
        "extra_headers": {"Authorization": "<redacted>", "anthropic-beta": "tools"},
        "max_completion_tokens": 256,
        "max_tokens": 64,
        "top_k": 5,
    }
    short, long = (
        make_backend("openai/m", {"max_completion_tokens": n}, base_url="http://127.0.0.1:9/v1")
        for n in (256, 4096)
    )
    request = ChatRequest(({"role": "user", "content": "hi"},)).cache_payload()
    assert request_key(short.identity(), request) != request_key(long.identity(), request)


def test_token_limits_change_the_cache_key_and_manifest_and_a_model_arg_key_is_never_written(
    make_server, tmp_path
):
    """`--model-arg max_completion_tokens=256` and `=4096` were once one cache key and one manifest hash:
    the second run was served the first one's truncated replies. A key given as `--model-arg api_key=`
    authenticates (a header) and is written nowhere, the request body included."""
    srv = make_server()
    task = write_task(tmp_path / "task", 5)

    def run_with(tokens: int) -> dict:
        out = tmp_path / "runs" / str(tokens)
        asyncio.run(
            run(
                RunConfig(
                    model="openai/m",
                    base_url=srv.base_url,
                    task_files=[str(task)],
                    output=str(out),
                    cache_path=str(tmp_path / "cache" / "responses.sqlite"),
                    model_args={"max_completion_tokens": tokens, "api_key": CANARY},
                )
            )
        )
        return json.loads((out / "manifest.json").read_text())

    short = run_with(256)
    assert srv.state.requests == 5
    long = run_with(4096)
    assert srv.state.requests == 10, "the 4096-token run was served the 256-token run's cached replies"
    assert short["manifest_hash"] != long["manifest_hash"]
    assert long["manifest"]["model"]["args"] == {"max_completion_tokens": 4096}
    assert all(h == f"Bearer {CANARY}" for h in srv.state.auth_headers)
    assert all(
        "api_key" not in body and body["max_completion_tokens"] in (256, 4096) for body in srv.state.bodies
    )
    for root in (tmp_path / "runs", tmp_path / "cache"):
        assert _files_containing(root, CANARY) == []
