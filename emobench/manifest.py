"""What a run is: its configuration, the tasks and samples it covers, and the manifest built from them.

A run is a pure function of its manifest (tasks with their args, dataset fingerprints and template
hashes, variants, model identity and generation settings, seed, harness version). `manifest_hash` is
what makes two runs comparable and lets the same command find its unfinished run directory again, so
it leaves out what describes where a run was made rather than what it measured: the git commit and the
environment (python, platform, CPU, the backend's library builds). Those are recorded all the same, so
`compare` can flag runs made on different numerics.
"""

from __future__ import annotations

import itertools
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from . import __version__
from .errors import DataError
from .judge import JudgePanel, rubrics_of
from .models.base import Backend
from .registry import make_tasks, resolve_task_names
from .schema import Environment, GenerationParams, JudgeManifest, Manifest, ModelManifest, TaskManifest
from .task import Task
from .types import Sample, stable_hash
from .variants import Variant

# where the run was made, not what it measured (a task file's content is in its fingerprint and
# template hash; its path is recorded so that `compare` and `rescore` can rebuild the task)
UNHASHED = ("git_commit", "environment", "task_files")


@dataclass
class RunConfig:
    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    tasks: str | None = None
    task_args: dict[str, Any] = field(default_factory=dict)
    task_files: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=lambda: ["direct"])
    variant_args: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    split: str = "test"
    seed: int = 1234
    concurrency: int = 8
    output: str | None = None
    runs_root: str = "runs"
    use_cache: bool = True
    cache_path: str | None = None
    base_url: str | None = None
    timeout: float = 120.0
    max_retries: int = 6
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    data_dir: str | None = None
    backoff_initial: float = 0.5
    judges: list[str] = field(default_factory=list)  # --judge: model specs of the judge panel


@dataclass
class PreparedTask:
    task: Task
    samples: list[Sample]
    fingerprint: str


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def dataset_fingerprint(samples: list[Sample]) -> str:
    return stable_hash([s.fingerprint_payload() for s in samples])[:16]


def prepare_tasks(config: RunConfig) -> list[PreparedTask]:
    """The selected tasks with their samples, checked before any model call."""
    names = resolve_task_names(config.tasks, config.task_files)
    prepared = []
    for task in make_tasks(names, config.task_args, config.data_dir, config.task_files):
        samples = list(itertools.islice(task.split_samples(config.split), config.limit))
        check_samples(task, samples, config.split, config.limit)
        prepared.append(PreparedTask(task, samples, dataset_fingerprint(samples)))
    return prepared


def check_samples(task: Task, samples: list[Sample], split: str, limit: int | None) -> None:
    """Records are keyed by sample id, so a repeated id would merge two items into one (and resume would
    skip the second); a task with no samples would give an empty result that reads like a score."""
    source = task.data_dir or task.source or "its loader"
    if not samples:
        raise DataError(
            source,
            f"task {task.name} loaded 0 samples (split {split!r}"
            f"{f', --limit {limit}' if limit is not None else ''}): check --data-dir, --split "
            "and --task-arg",
        )
    first: dict[str, int] = {}
    for position, sample in enumerate(samples, 1):
        seen = first.setdefault(sample.id, position)
        if seen != position:
            raise DataError(
                source,
                f"task {task.name}: sample id {sample.id!r} appears twice (samples #{seen} "
                f"and #{position} of split {split!r}); sample ids must be unique",
            )


def environment(backend: Backend) -> Environment:
    """Where the answers' numerics come from; recorded, not hashed (see the module docstring)."""
    return cast(
        Environment,
        {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            **backend.environment(),
        },
    )


def build_manifest(
    config: RunConfig,
    backend: Backend,
    tasks: list[PreparedTask],
    variants: list[Variant],
    judges: JudgePanel | None = None,
) -> Manifest:
    """Everything that determines the results. Two runs with equal manifest hashes are comparable. A
    judged task's entry says who judged it and by which rubrics and templates (`judge`)."""
    return {
        "harness_version": __version__,
        "git_commit": git_commit(),
        "environment": environment(backend),
        "task_files": [str(Path(f).resolve()) for f in config.task_files],
        "model": cast(
            ModelManifest,
            {
                "spec": config.model or "smollm2",
                **backend.identity(),
                "generation_overrides": {"temperature": config.temperature, "max_tokens": config.max_tokens},
                "system_prompt": config.system_prompt,
            },
        ),
        "seed": config.seed,
        "split": config.split,
        "limit": config.limit,
        "tasks": {p.task.name: _task_manifest(p, judges) for p in tasks},
        "variants": {v.name: v.config() for v in variants},
    }


def _task_manifest(p: PreparedTask, judges: JudgePanel | None) -> TaskManifest:
    entry: TaskManifest = {
        "args": p.task.args,
        "dataset_fingerprint": p.fingerprint,
        "template_hash": p.task.template_hash(),
        "n": len(p.samples),
        "family": p.task.family,
        "output_mode": p.task.output_mode,
        "generation": cast(GenerationParams, asdict(p.task.gen_params)),
    }
    rubrics = rubrics_of(p.task, p.samples)
    if rubrics and judges is not None:  # only judged tasks: the others' manifests stay as they were
        entry["judge"] = cast(JudgeManifest, judges.manifest(rubrics))
    return entry


def manifest_hash(manifest: Manifest) -> str:
    return stable_hash({k: v for k, v in manifest.items() if k not in UNHASHED})[:16]
