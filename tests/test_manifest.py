"""The manifest says what a run is: its hash decides which runs are comparable and which directory a
command resumes; the environment it ran on is recorded beside it without splitting comparable runs;
results.json says whether every sample of the manifest has a record."""

from __future__ import annotations

import asyncio
import json
import platform

from emobench.client import ModelClient
from emobench.manifest import RunConfig, build_manifest, manifest_hash, prepare_tasks
from emobench.models import make_backend
from emobench.results import build_results
from emobench.runner import run
from emobench.runstore import RunStore
from emobench.variants import make_variant
from reliability_support import write_task


def _config(tmp_path, **kw) -> RunConfig:
    task = write_task(tmp_path / "task", 10)
    return RunConfig(model="random", task_files=[str(task)], output=str(tmp_path / "run"), **kw)


def test_environment_is_recorded_but_not_part_of_the_manifest_hash(tmp_path):
    config = _config(tmp_path)
    backend = make_backend("random")
    manifest = build_manifest(config, backend, prepare_tasks(config), [make_variant("direct")])
    env = manifest["environment"]
    assert env["python"] == platform.python_version() and env["machine"] == platform.machine()
    assert env["platform"] == platform.platform()
    elsewhere = {**manifest, "environment": {**env, "machine": "another-cpu"}, "git_commit": "0" * 40}
    assert manifest_hash(elsewhere) == manifest_hash(manifest)
    assert manifest_hash({**manifest, "seed": config.seed + 1}) != manifest_hash(manifest)
    run_dir, results = asyncio.run(run(config))
    assert results["manifest"]["environment"]["python"] == platform.python_version()
    assert json.loads((run_dir / "manifest.json").read_text())["manifest"]["environment"] == env


def test_complete_only_when_every_manifest_sample_has_a_record(tmp_path):
    config = _config(tmp_path)
    run_dir, results = asyncio.run(run(config))
    counts = {k: results["run"][k] for k in ("complete", "n_expected", "n_missing", "n_errors")}
    assert counts == {"complete": True, "n_expected": 10, "n_missing": 0, "n_errors": 0}
    store = RunStore(run_dir)
    lines = store.samples_path.read_text().splitlines(keepends=True)
    store.samples_path.write_text("".join(lines[:4] + lines[7:]))  # three samples lost
    tasks, variants = prepare_tasks(config), [make_variant("direct")]
    again = build_results(
        store,
        tasks,
        variants,
        results["manifest"],
        results["manifest_hash"],
        ModelClient(make_backend("random")),
        0.0,
        config,
    )
    assert again["run"]["complete"] is False
    assert again["run"]["n_expected"] == 10 and again["run"]["n_missing"] == 3


def test_the_seed_reaches_the_requests_so_a_new_seed_is_not_served_from_the_cache(server, tmp_path):
    task = write_task(tmp_path / "task", 5)

    def run_with(seed: int) -> None:
        asyncio.run(
            run(
                RunConfig(
                    model="openai/loopback",
                    base_url=server.base_url,
                    task_files=[str(task)],
                    output=str(tmp_path / f"run-{seed}"),
                    seed=seed,
                )
            )
        )

    run_with(1)
    assert server.state.requests == 5
    run_with(1)
    assert server.state.requests == 5, "the same seed is served from the cache"
    run_with(2)
    assert server.state.requests == 10, "another seed is another request"
