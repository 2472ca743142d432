"""Scoring replies that are already written down: `emobench rescore` and `emobench import`.

Both replay recorded replies through the runner's own `answer_sample` (so parsing, voting over draws,
scoring, outcomes and record building are exactly those of a live run) and the results through
`build_results`. Nothing here calls a model: the replay backend refuses to generate.

- rescore: the run directory's samples.jsonl is the source of truth for what the model said; each
  non-error record is parsed and scored again with the current task code, its parsed/target/score/
  outcome/error fields are rewritten (the first rescore keeps the original file as
  samples.jsonl.orig) and results.json is rebuilt. Samples come from `imported_samples.jsonl` when the
  run was imported, else from the task's loader (so a fixed label is picked up).
- import: predictions made elsewhere (a generic `sample_id, prediction` JSONL/CSV, or a task's own
  native result files such as the EmoBench authors' CSVs) become a run directory with the same schema
  as `emobench run`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import __version__, data
from .client import ModelClient
from .errors import ConfigError, DataError
from .models.base import Backend, Unsupported
from .registry import make_task, resolve_task_names
from .results import build_results
from .runner import PreparedTask, RunConfig, build_manifest, git_commit, manifest_hash
from .runner import answer_sample as _answer_sample
from .runstore import RunDirError, RunStore, atomic_write
from .task import Task
from .types import ChatRequest, Completion, Sample, Usage, record_key, stable_hash
from .variants import Variant, VariantOutput

IMPORTED_SAMPLES = "imported_samples.jsonl"
PREDICTION_KEYS = ("prediction", "predictions", "response")


class ReplayBackend(Backend):
    """Stands where a model would: identifies the source of the replies and never generates."""

    kind = "import"

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        raise Unsupported("recorded replies only: this run was imported or rescored, not generated")


class ReplayVariant(Variant):
    """Answers with the replies it is given (one per draw) instead of asking a model."""

    name = "direct"

    def __init__(self, name: str = "direct", config: dict[str, Any] | None = None):
        super().__init__()
        self.name = name  # the recorded variant's name, so record keys stay the same
        self._config = config or {"name": name}
        self.replies: list[str] = []
        self.trace: dict[str, Any] = {}
        self.prompt: list[dict[str, str]] | None = None

    def config(self) -> dict[str, Any]:
        return self._config

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        return VariantOutput(list(self.replies), self.prompt or task.render(sample), dict(self.trace))


async def _replay(task: Task, variant: ReplayVariant, sample: Sample, replies: list[str], client: ModelClient,
                  trace: dict[str, Any] | None = None, prompt: list[dict[str, str]] | None = None):
    variant.replies, variant.trace, variant.prompt = replies, trace or {}, prompt
    return await _answer_sample(task, variant, sample, client)


def _client(backend: Backend) -> ModelClient:
    return ModelClient(backend, cache=None, concurrency=1, max_retries=0)


# ---- rescore ------------------------------------------------------------------------------------
def rescore_run(run_dir: str | Path, data_dir: str | None = None,
                task_files: Sequence[str] = ()) -> dict[str, Any]:
    """Parse and score every recorded reply again with the current task code; rewrite the run's
    samples.jsonl fields and results.json. Returns the new results."""
    store = RunStore(run_dir)
    state = store.read_state()
    if state is None or not store.samples_path.exists():
        raise RunDirError(f"{store.dir}: not a run directory (no manifest.json / samples.jsonl)")
    manifest, mhash = state["manifest"], state["manifest_hash"]
    imported = _read_imported_samples(store.dir)
    prepared, samples_by_task = [], {}
    for name, spec in manifest["tasks"].items():
        task = make_task(name, spec.get("args") or {}, data_dir, list(task_files))
        if imported is not None:
            samples = [s for s in imported if s.metadata.get("_task", name) == name]
        else:
            limit = manifest.get("limit")
            samples = list(itertools.islice(task.load_samples(manifest.get("split", "test")), limit))
        fingerprint = stable_hash([s.fingerprint_payload() for s in samples])[:16]
        prepared.append(PreparedTask(task, samples, fingerprint))
        samples_by_task[name] = {s.id: s for s in samples}
    variants = [ReplayVariant(name, cfg) for name, cfg in manifest.get("variants", {}).items()]
    by_name = {v.name: v for v in variants}
    client = _client(ReplayBackend(manifest["model"].get("model", "recorded")))

    records = list(store.iter_records())
    changed, missing = 0, 0

    async def rescore_all() -> None:
        nonlocal changed, missing
        for rec in records:
            if rec["outcome"] == "error":
                continue
            sample = samples_by_task.get(rec["task"], {}).get(rec["sample_id"])
            if sample is None or rec["variant"] not in by_name:
                missing += 1
                continue
            task = next(p.task for p in prepared if p.task.name == rec["task"])
            meta = rec.get("metadata") or {}
            replies = list(meta.get("responses") or [rec.get("response") or ""])
            new = await _replay(task, by_name[rec["variant"]], sample, replies, client, meta.get("trace"))
            before = (rec["parsed"], rec["score"], rec["outcome"])
            rec.update(parsed=_jsonable(new.parsed), target=_jsonable(new.target), score=new.score,
                       outcome=new.outcome, error=new.error)
            changed += before != (rec["parsed"], rec["score"], rec["outcome"])

    asyncio.run(rescore_all())
    backup = store.dir / "samples.jsonl.orig"
    if not backup.exists():
        shutil.copyfile(store.samples_path, backup)
    atomic_write(store.samples_path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))
    old_run = _old_run_section(store)
    results = build_results(store, prepared, variants, manifest, mhash, client, time.time(),
                            RunConfig(concurrency=old_run.get("concurrency", 1)))
    for p in prepared:
        recorded = manifest["tasks"][p.task.name].get("dataset_fingerprint")
        if recorded and recorded != p.fingerprint:
            for entry in results["results"]:
                if entry["task"] == p.task.name:
                    entry["note"] = (entry.get("note", "") + " the dataset differs from the one of the original "
                                     "run (fingerprint changed); samples were matched by id").strip()
    results["run"] = {**results["run"], **{k: v for k, v in old_run.items() if k != "rescored"},
                      "rescored": {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "harness_version": __version__, "git_commit": git_commit(),
                                   "records_changed": changed, "records_without_sample": missing}}
    store.write_results(results)
    return results


def _old_run_section(store: RunStore) -> dict[str, Any]:
    try:
        return dict(json.loads(store.results_path.read_text(encoding="utf-8")).get("run") or {})
    except (OSError, ValueError):
        return {}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ---- import -------------------------------------------------------------------------------------
def read_generic_predictions(path: str | Path) -> list[tuple[int, str, list[str]]]:
    """(line, sample_id, replies) rows from a JSONL (`{"sample_id", "prediction"}`, the prediction a
    reply text or a list of one per draw) or a CSV with `sample_id,prediction` columns (a repeated id
    adds a draw). The replies go through the task's own parser."""
    path = Path(path)
    rows = data.read_csv(path) if path.suffix in (".csv", ".tsv") else data.read_jsonl(path)
    out: list[tuple[int, str, list[str]]] = []
    for line, row in rows:
        if "sample_id" not in row:
            raise DataError(path, "missing field 'sample_id'", line)
        key = next((k for k in PREDICTION_KEYS if k in row), None)
        if key is None:
            raise DataError(path, "missing field 'prediction'", line)
        value = row[key]
        replies = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (str, int, float)) or v is None for v in replies):
            raise DataError(path, f"field {key!r} must be a reply text or a list of reply texts", line)
        out.append((line, str(row["sample_id"]), ["" if v is None else str(v) for v in replies]))
    return out


def is_reference_file(task: Task, path: str | Path) -> bool:
    """A task's native result file (e.g. EmoBench's `Pred 1..5` CSVs), read by the task itself."""
    if not hasattr(task, "read_reference_outputs") or Path(path).suffix != ".csv":
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    return "Pred 1" in header


def import_predictions(paths: Sequence[str | Path], task_name: str, run_dir: str | Path, model_name: str,
                       task_args: dict[str, Any] | None = None, data_dir: str | None = None,
                       split: str = "test", task_files: Sequence[str] = ()) -> dict[str, Any]:
    """Write a run directory from prediction files; returns its results (same schema as a run)."""
    names = resolve_task_names(task_name, list(task_files))
    if len(names) != 1:
        raise ConfigError("emobench import takes exactly one task (--tasks NAME)")
    task = make_task(names[0], task_args or {}, data_dir, list(task_files))
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise DataError(p, "file not found")
    if all(is_reference_file(task, p) for p in paths):
        pairs = task.read_reference_outputs(paths)
    elif any(is_reference_file(task, p) for p in paths):
        raise ConfigError("do not mix the task's native result files with generic prediction files")
    else:
        pairs = _generic_pairs(task, paths, split)
    if not pairs:
        raise ConfigError("no predictions matched the task's samples")
    store = RunStore(run_dir)
    if store.read_state() is not None or store.samples_path.exists():
        raise RunDirError(f"{store.dir} already holds a run; choose another --output")
    samples = [s for s, _ in pairs]
    sources = [{"file": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in paths]
    backend = ReplayBackend(model_name, imported_from=sources)
    variant = ReplayVariant("direct", {"name": "direct", "imported": True})
    prepared = [PreparedTask(task, samples, stable_hash([s.fingerprint_payload() for s in samples])[:16])]
    config = RunConfig(model=f"import/{model_name}", tasks=task.name, task_args=dict(task.args), split=split,
                       data_dir=data_dir, concurrency=1)
    manifest = build_manifest(config, backend, prepared, [variant])
    mhash = manifest_hash(manifest)
    started = time.time()
    store.write_state(manifest, mhash, "running")
    _write_imported_samples(store.dir, samples, task.name)
    client = _client(backend)

    async def replay_all() -> None:
        store.open_for_append()
        try:
            for sample, replies in pairs:
                store.append(await _replay(task, variant, sample, replies, client))
        finally:
            store.close()

    asyncio.run(replay_all())
    store.compact([record_key(task.name, variant.name, s.id) for s in samples])
    results = build_results(store, prepared, [variant], manifest, mhash, client, started, config)
    store.write_results(results)
    store.write_state(manifest, mhash, "complete")
    return results


def _generic_pairs(task: Task, paths: list[Path], split: str) -> list[tuple[Sample, list[str]]]:
    samples = {s.id: s for s in task.load_samples(split)}
    predictions: dict[str, list[str]] = {}
    for p in paths:
        for line, sid, replies in read_generic_predictions(p):
            if sid not in samples:
                raise DataError(p, f"sample_id {sid!r} is not a sample of task {task.name} with these "
                                f"--task-args (ids look like {next(iter(samples), 'none')!r})", line)
            predictions.setdefault(sid, []).extend(replies)
    return [(s, predictions[sid]) for sid, s in samples.items() if sid in predictions]


def _write_imported_samples(run_dir: Path, samples: list[Sample], task_name: str) -> None:
    lines = [json.dumps({**asdict(s), "metadata": {**s.metadata, "_task": task_name}}, ensure_ascii=False,
                        default=str) for s in samples]
    atomic_write(run_dir / IMPORTED_SAMPLES, "\n".join(lines) + "\n")


def _read_imported_samples(run_dir: Path) -> list[Sample] | None:
    path = run_dir / IMPORTED_SAMPLES
    if not path.exists():
        return None
    return [Sample(**obj) for _, obj in data.read_jsonl(path)]
