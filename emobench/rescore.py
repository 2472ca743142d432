"""Scoring replies that are already written down: `emobench rescore` and `emobench import`.

Both score recorded replies on the runner's own path (`emobench.scoring`: parsing, voting over draws,
scoring, outcomes and the record of a sample are exactly those of a live run) and rebuild the results
with `build_results`. Nothing here calls a model: the replay backend refuses to generate.

- rescore: the run directory's samples.jsonl is the source of truth for what the model said; each
  non-error record is parsed and scored again with the current task code, its parsed/target/score/
  outcome/error fields (and `metadata.strict_parse`) are rewritten (the first rescore keeps the
  original file as samples.jsonl.orig) and results.json is rebuilt. Samples come from
  `imported_samples.jsonl` when the run was imported, else from the task's loader through the same
  preparation as the run (its manifest's task args, `dev_size` hold-out, split and limit), so a fixed
  label is picked up and every recorded sample is found again. A judged task (emobench/judge.py) is
  scored from the judges' verdicts recorded in each sample's trace: no judge is called again.
- import: predictions made elsewhere (a generic `sample_id, prediction` JSONL/CSV, or a task's own
  native result files such as the EmoBench authors' CSVs) become a run directory with the same schema
  as `emobench run`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from . import __version__, data
from .client import ModelClient
from .errors import ConfigError, DataError
from .judge import rubrics_of
from .manifest import (
    PreparedTask,
    RunConfig,
    build_manifest,
    dataset_fingerprint,
    git_commit,
    manifest_hash,
    prepare_tasks,
)
from .models.base import Backend, Unsupported
from .registry import make_task, resolve_task_names
from .results import build_results
from .runstore import RunDirError, RunStore, atomic_write
from .schema import Manifest, RunResults, RunSummary
from .scoring import sample_record, score_replies
from .task import Task
from .types import ChatRequest, Completion, Sample, Usage, record_key
from .variants import Variant, make_variant
from .variants.base import StandIn

IMPORTED_SAMPLES = "imported_samples.jsonl"
PREDICTION_KEYS = ("prediction", "predictions", "response")


class ReplayBackend(Backend):
    """Stands where a model would: identifies the source of the replies and never generates."""

    kind = "import"

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        raise Unsupported("recorded replies only: this run was imported or rescored, not generated")


class RecordedVariant(StandIn):
    """Names the variant that made the recorded replies (record keys and results keep it); asks nothing.
    Its variant-level metrics are those the named variant computes from the records."""

    def __init__(self, name: str = "direct", config: dict[str, Any] | None = None):
        config = config or {"name": name}
        super().__init__(name, config, _summarizer(name, config))


def _summarizer(name: str, config: dict[str, Any]) -> Variant | None:
    """The variant `name` with its recorded options, to summarize the records (it asks nothing); None
    when this emobench has no such variant."""
    try:
        return make_variant(name, {k: v for k, v in config.items() if k != "name"})
    except ConfigError:
        return None


def _client(backend: Backend) -> ModelClient:
    return ModelClient(backend, cache=None, concurrency=1, max_retries=0)


# ---- rescore ------------------------------------------------------------------------------------
def rescore_run(
    run_dir: str | Path, data_dir: str | None = None, task_files: Sequence[str] = ()
) -> RunResults:
    """Parse and score every recorded reply again with the current task code; rewrite the run's
    samples.jsonl fields and results.json. Returns the new results."""
    store = RunStore(run_dir)
    state = store.read_state()
    if state is None or not store.samples_path.exists():
        raise RunDirError(f"{store.dir}: not a run directory (no manifest.json / samples.jsonl)")
    manifest, mhash = state["manifest"], state["manifest_hash"]
    prepared = _recorded_tasks(store.dir, manifest, data_dir, list(task_files))
    variants = [RecordedVariant(name, cfg) for name, cfg in manifest.get("variants", {}).items()]
    records = list(store.iter_records())
    changed, missing = _rescore_records(records, prepared, {v.name for v in variants})
    backup = store.dir / "samples.jsonl.orig"
    if not backup.exists():
        shutil.copyfile(store.samples_path, backup)
    atomic_write(
        store.samples_path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
    )
    old_run = _old_run_section(store)
    client = _client(ReplayBackend(manifest["model"].get("model", "recorded")))
    results = build_results(
        store,
        prepared,
        variants,
        manifest,
        mhash,
        client,
        time.time(),
        RunConfig(concurrency=old_run.get("concurrency", 1)),
    )
    _note_changed_datasets(results, prepared, manifest)
    # cast: the `run` that build_results wrote to this results.json before, read back as unchecked JSON
    kept = cast(RunSummary, {k: v for k, v in old_run.items() if k != "rescored"})
    results["run"] = {
        **results["run"],
        **kept,
        "rescored": {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "harness_version": __version__,
            "git_commit": git_commit(),
            "records_changed": changed,
            "records_without_sample": missing,
        },
    }
    store.write_results(results)
    return results


def _rescore_records(
    records: list[dict[str, Any]], prepared: list[PreparedTask], variants: set[str]
) -> tuple[int, int]:
    """Rescore the non-error records in place; (records whose verdict changed, records left as they
    were because no sample or variant of the run matches them)."""
    samples = {p.task.name: (p.task, {s.id: s for s in p.samples}) for p in prepared}
    changed, missing = 0, 0
    for rec in records:
        if rec["outcome"] == "error":
            continue
        task, by_id = samples.get(rec["task"], (None, {}))
        sample = by_id.get(rec["sample_id"])
        if task is None or sample is None or rec["variant"] not in variants:
            missing += 1
            continue
        before = (rec["parsed"], rec["score"], rec["outcome"])
        _rescore_record(rec, task, sample)
        changed += before != (rec["parsed"], rec["score"], rec["outcome"])
    return changed, missing


def _note_changed_datasets(results: RunResults, prepared: list[PreparedTask], manifest: Manifest) -> None:
    for p in prepared:
        recorded = manifest["tasks"][p.task.name].get("dataset_fingerprint")
        if recorded and recorded != p.fingerprint:
            for entry in results["results"]:
                if entry["task"] == p.task.name:
                    entry["note"] = (
                        entry.get("note", "") + " the dataset differs from the one of the original "
                        "run (fingerprint changed); samples were matched by id"
                    ).strip()


def _recorded_tasks(
    run_dir: Path, manifest: Manifest, data_dir: str | None, task_files: list[str]
) -> list[PreparedTask]:
    """The run's tasks and samples: an imported run's own samples, else the samples `emobench run`
    asked, prepared the same way from the manifest (task args incl. dev_size, split, limit)."""
    imported = _read_imported_samples(run_dir)
    prepared = []
    for name, spec in manifest["tasks"].items():
        args = dict(spec.get("args") or {})
        if imported is not None:
            task = make_task(name, args, data_dir, task_files)
            own = [s for s in imported if s.metadata.get("_task", name) == name]
            prepared.append(PreparedTask(task, own, dataset_fingerprint(own)))
            continue
        config = RunConfig(
            tasks=name,
            task_args=args,
            task_files=task_files,
            split=manifest.get("split", "test"),
            limit=manifest.get("limit"),
            data_dir=data_dir,
        )
        prepared.extend(prepare_tasks(config))
    return prepared


def _rescore_record(rec: dict[str, Any], task: Task, sample: Sample) -> None:
    """Score the record's recorded replies (every draw) again; only the verdict fields change."""
    meta = rec.get("metadata") or {}
    replies = list(meta.get("responses") or [rec.get("response") or ""])
    # a judged task's score comes from the verdicts recorded at run time: rescoring calls no judge
    scored = score_replies(task, sample, replies, (meta.get("trace") or {}).get("judge"))
    rec.update(
        parsed=_jsonable(scored.parsed),
        target=_jsonable(sample.target),
        score=scored.score,
        outcome=scored.outcome,
        error=scored.error,
        metadata=scored.annotate(meta),
    )


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
    """A task's native result file (e.g. EmoBench's `Pred 1..5` CSVs), read by the task itself: only a
    task that defines `read_reference_outputs` has one."""
    if type(task).read_reference_outputs is Task.read_reference_outputs or Path(path).suffix != ".csv":
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    return "Pred 1" in header


def import_predictions(
    paths: Sequence[str | Path],
    task_name: str,
    run_dir: str | Path,
    model_name: str,
    task_args: dict[str, Any] | None = None,
    data_dir: str | None = None,
    split: str = "test",
    task_files: Sequence[str] = (),
) -> RunResults:
    """Write a run directory from prediction files; returns its results (same schema as a run)."""
    names = resolve_task_names(task_name, list(task_files))
    if len(names) != 1:
        raise ConfigError("emobench import takes exactly one task (--tasks NAME)")
    task = make_task(names[0], task_args or {}, data_dir, list(task_files))
    files = [Path(p) for p in paths]
    for p in files:
        if not p.exists():
            raise DataError(p, "file not found")
    if all(is_reference_file(task, p) for p in files):
        pairs = task.read_reference_outputs(files)
    elif any(is_reference_file(task, p) for p in files):
        raise ConfigError("do not mix the task's native result files with generic prediction files")
    else:
        pairs = _generic_pairs(task, files, split)
    if not pairs:
        raise ConfigError("no predictions matched the task's samples")
    if rubrics_of(task, [s for s, _ in pairs]):
        raise ConfigError(
            f"task {task.name} is scored by a judge model, and import calls no model: run it with "
            "`emobench run --judge SPEC` instead"
        )
    store = RunStore(run_dir)
    if store.read_state() is not None or store.samples_path.exists():
        raise RunDirError(f"{store.dir} already holds a run; choose another --output")
    samples = [s for s, _ in pairs]
    sources = [{"file": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in files]
    backend = ReplayBackend(model_name, imported_from=sources)
    variant = RecordedVariant("direct", {"name": "direct", "imported": True})
    prepared = [PreparedTask(task, samples, dataset_fingerprint(samples))]
    config = RunConfig(
        model=f"import/{model_name}",
        tasks=task.name,
        task_args=dict(task.args),
        split=split,
        data_dir=data_dir,
        concurrency=1,
    )
    manifest = build_manifest(config, backend, prepared, [variant])
    mhash = manifest_hash(manifest)
    started = time.time()
    store.write_state(manifest, mhash, "running")
    _write_imported_samples(store.dir, samples, task.name)
    store.open_for_append()
    try:
        for sample, replies in pairs:
            store.append(sample_record(task, variant.name, sample, None, replies, {}, Usage(), 0.0))
    finally:
        store.close()
    store.compact([record_key(task.name, variant.name, s.id) for s in samples])
    results = build_results(store, prepared, [variant], manifest, mhash, _client(backend), started, config)
    store.write_results(results)
    store.write_state(manifest, mhash, "complete")
    return results


def _generic_pairs(task: Task, paths: list[Path], split: str) -> list[tuple[Sample, list[str]]]:
    samples = {s.id: s for s in task.split_samples(split)}  # as `emobench run` would ask them (dev_size)
    predictions: dict[str, list[str]] = {}
    for p in paths:
        for line, sid, replies in read_generic_predictions(p):
            if sid not in samples:
                raise DataError(
                    p,
                    f"sample_id {sid!r} is not a sample of task {task.name} with these "
                    f"--task-args (ids look like {next(iter(samples), 'none')!r})",
                    line,
                )
            predictions.setdefault(sid, []).extend(replies)
    return [(s, predictions[sid]) for sid, s in samples.items() if sid in predictions]


def _write_imported_samples(run_dir: Path, samples: list[Sample], task_name: str) -> None:
    lines = [
        json.dumps(
            {**asdict(s), "metadata": {**s.metadata, "_task": task_name}}, ensure_ascii=False, default=str
        )
        for s in samples
    ]
    atomic_write(run_dir / IMPORTED_SAMPLES, "\n".join(lines) + "\n")


def _read_imported_samples(run_dir: Path) -> list[Sample] | None:
    path = run_dir / IMPORTED_SAMPLES
    if not path.exists():
        return None
    return [Sample(**obj) for _, obj in data.read_jsonl(path)]
