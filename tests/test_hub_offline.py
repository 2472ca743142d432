"""Without a network: a task whose data comes from the Hugging Face hub stops within seconds with one
clear line telling the user to pass --data-dir (the hub libraries' own retries took 25 s per dataset,
and over 3 minutes for an lm-eval export), and `emobench export lm-eval` needs no data at all.

Each check runs the CLI in a fresh interpreter: the hub libraries read HF_ENDPOINT and HF_HUB_OFFLINE
once, at import, so the environment must be set before they load."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from emobench.judged import JudgedTask
from emobench.registry import builtin_tasks
from reliability_support import cli

FAST_S = 15  # loose: the fixed code takes 2-4 s here, most of it importing `datasets`


def closed_port() -> int:
    """A local port nobody listens on: connecting is refused at once, as on a machine without network."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_network(tmp_path) -> dict[str, str]:
    """The hub endpoint is a closed port, the hub cache is empty, and no offline switch is set."""
    return {
        "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "",
        "HF_DATASETS_OFFLINE": "",
    }


@pytest.fixture
def offline(no_network) -> dict[str, str]:
    return {**no_network, "HF_HUB_OFFLINE": "1"}


LOAD = """
import sys
from emobench.errors import EmobenchError
from emobench.registry import make_task
try:
    print(len(list(make_task(sys.argv[1], {}).load_samples("test"))))
except EmobenchError as exc:
    sys.exit(f"emobench: error: {exc}")
"""


def run_task(tmp_path, task: str, env: dict[str, str]):
    """Load the task's samples the way `emobench run` does, and print its error line as the CLI would."""
    start = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", LOAD, task],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        cwd=tmp_path,
    )
    return res, time.perf_counter() - start


@pytest.mark.parametrize(
    "task", ["emobench_ea", "longemotion_qa"]
)  # through `datasets`, and one file download
@pytest.mark.parametrize("mode", ["unreachable", "HF_HUB_OFFLINE"])
def test_a_hub_task_without_network_fails_fast_with_one_clear_line(tmp_path, no_network, offline, task, mode):
    res, elapsed = run_task(tmp_path, task, no_network if mode == "unreachable" else offline)
    line = res.stderr.strip()
    assert res.returncode == 1, res.stderr[-2000:]
    assert "\n" not in line and "--data-dir" in line and "Retrying" not in res.stderr, res.stderr[-2000:]
    assert elapsed < FAST_S, f"took {elapsed:.1f}s: {line}"


def test_the_error_says_why_the_hub_could_not_be_used(tmp_path, no_network, offline):
    unreachable, _ = run_task(tmp_path, "emobench_ea", no_network)
    assert "cannot be reached" in unreachable.stderr and no_network["HF_ENDPOINT"] in unreachable.stderr
    told, _ = run_task(tmp_path, "emobench_ea", offline)
    assert "HF_HUB_OFFLINE is set" in told.stderr


CACHED = """
import sys
from emobench.data import hub_rows
print(sum(1 for _ in hub_rows("json", data_files=sys.argv[1])))
"""


def test_without_a_hub_datasets_still_serves_what_it_can_without_one(tmp_path, no_network, offline):
    """No network is no reason to refuse what `datasets` can give offline (a dataset in its cache, or a
    local builder such as `json`): the clear error is for what it cannot give."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"a": 1}\n{"a": 2}\n')
    for env in (no_network, offline):
        res = subprocess.run(
            [sys.executable, "-c", CACHED, str(rows)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
            cwd=tmp_path,
        )
        assert res.returncode == 0 and res.stdout.strip() == "2", res.stderr[-2000:]


def test_the_error_never_prints_a_password_the_endpoint_carries(tmp_path, no_network):
    env = {**no_network, "HF_ENDPOINT": no_network["HF_ENDPOINT"].replace("http://", "http://me:s3cret@")}
    res, _ = run_task(tmp_path, "emobench_ea", env)
    assert "cannot be reached" in res.stderr and "s3cret" not in res.stderr, res.stderr[-2000:]


class _NoSuchDataset(BaseHTTPRequestHandler):
    """A hub that answers, but has none of the datasets."""

    def _missing(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _missing

    def log_message(self, *args):  # keep the test output clean
        pass


def test_a_reachable_hub_is_asked_and_its_answer_is_the_error(tmp_path, no_network):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoSuchDataset)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**no_network, "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"}
        res, elapsed = run_task(tmp_path, "emobench_ea", env)
    finally:
        server.shutdown()
        server.server_close()
    assert res.returncode == 1 and "could not load from the Hugging Face hub" in res.stderr, res.stderr[
        -2000:
    ]
    assert "cannot be reached" not in res.stderr and elapsed < FAST_S


def test_export_lm_eval_offline_finishes_in_seconds_and_writes_every_task(tmp_path, no_network):
    """Every built-in task but the judge-scored ones, which lm-eval cannot score (skipped with the reason)."""
    out = tmp_path / "lmeval"
    start = time.perf_counter()
    res = cli("export", "lm-eval", "--out", str(out), env=no_network, timeout=120)
    elapsed = time.perf_counter() - start
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert elapsed < FAST_S, f"export took {elapsed:.1f}s"
    tasks = builtin_tasks()
    judged = {name for name, cls in tasks.items() if issubclass(cls, JudgedTask)}
    assert judged == {"longemotion_mc", "longemotion_es", "longemotion_ee"}
    skipped = {line.split()[1].rstrip(":") for line in res.stdout.splitlines() if line.startswith("skipped")}
    assert skipped == judged and res.stdout.count("is scored by a judge model") == len(judged)
    assert {p.stem for p in out.glob("*.yaml")} == set(tasks) - judged
    assert "emobench.lmeval_export" in (out / "utils.py").read_text()
    spec = yaml.safe_load((out / "emobench_ea.yaml").read_text().replace("!function", ""))
    assert "SahandSab/EmoBench" in spec["metadata"]["emobench_source"]  # the YAML names the hub dataset
    assert spec["dataset_kwargs"]["emobench_task"] == "emobench_ea"
    assert not list(out.glob("*.jsonl"))  # no data was read: lm-eval loads it when it runs
