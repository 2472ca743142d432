"""`emobench run`: schedule every (task, variant, sample), append each finished sample, then score.

Data flows one way: task -> samples -> variant -> ModelClient -> parse -> score -> run log -> results.
A sample already finished in the run directory is never asked again; a request answered in any earlier
run is served by the response cache. So a killed run, started again with the same command, resumes
with no repeated model call for finished samples, and so does a run that ended with errors (only the
errored samples are asked again, with or without the cache). One process at a time works in a run
directory: it holds the directory's lock from the manifest check to the last write.
"""

from __future__ import annotations

import asyncio
import gc
import re
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .cache import ResponseCache
from .client import ModelClient
from .errors import ConfigError, EmobenchError, ModelCallError
from .judge import JudgePanel, rubrics_of
from .manifest import PreparedTask, RunConfig, build_manifest, manifest_hash, prepare_tasks
from .models import make_backend, split_spec
from .models.base import Backend, redact
from .models.baselines import Baseline
from .paths import cache_dir
from .results import build_results, run_status
from .runstore import RunStore
from .schema import RunResults
from .scoring import sample_record
from .task import Task
from .types import Sample, SampleRecord, Usage, record_key
from .variants import Variant, VariantOutput, make_variant
from .variants.baseline import BaselineAnswers


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "run"


def choose_run_dir(config: RunConfig, mhash: str) -> Path:
    """--output if given; else the latest unfinished run of the same manifest under runs/ (resume; a run
    that ended with errors is unfinished too); else a new runs/<timestamp>_<model>_<suite>/. A directory
    another process is running in is chosen all the same: its lock then stops this run with one line
    (two processes on one manifest would ask every sample twice)."""
    if config.output:
        return Path(config.output)
    root = Path(config.runs_root)
    if root.is_dir():
        for candidate in sorted(root.iterdir(), reverse=True):
            state = RunStore(candidate).read_state()
            if state and state.get("manifest_hash") == mhash and state.get("status") != "complete":
                return candidate
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    model = _slug(split_spec(config.model)[1].split("/")[-1])
    return root / f"{stamp}_{model}_{_slug(config.tasks or 'default')}"


async def answer_sample(
    task: Task, variant: Variant, sample: Sample, client: ModelClient, judges: JudgePanel | None = None
) -> SampleRecord:
    """Ask one sample, have `judges` judge its replies when the task is judged (their verdicts go into
    the trace), then score them on the shared path (`emobench.scoring`). Never raises: failures become
    `error` or `unparseable`."""
    usage = Usage()
    start = time.perf_counter()
    out: VariantOutput | None = None
    error: str | None = None
    try:
        out = await variant.answer(task, sample, client, usage)
        verdicts = await judges.judge(task, sample, out.responses) if judges is not None else None
        if verdicts is not None:
            out.trace["judge"] = verdicts
    except ModelCallError as exc:
        error = str(exc)
    except EmobenchError:  # a bad template or task configuration: stop the run with one clear line
        raise
    except Exception as exc:  # a bug in a variant or backend must not lose the other samples
        error = redact(f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - start
    if out is None:
        return sample_record(task, variant.name, sample, None, None, {}, usage, elapsed, error)
    return sample_record(task, variant.name, sample, out.prompt, out.responses, out.trace, usage, elapsed)


async def run(config: RunConfig, progress=None) -> tuple[Path, RunResults]:
    """Run, or resume, what `config` describes; returns the run directory and its results."""
    started = time.time()
    backend = make_backend(
        config.model,
        config.model_args,
        base_url=config.base_url,
        timeout=config.timeout,
        concurrency=config.concurrency,
    )
    judges: JudgePanel | None = None
    try:
        tasks = prepare_tasks(config)
        chosen = [make_variant(v, config.variant_args) for v in config.variants]
        # a variant that cannot ask a task says so before any call, and before its config is read
        for p in tasks:
            for v in chosen:
                v.check_task(p.task, p.samples)
        variants = answerers(backend, tasks, chosen)
        client = _client(config, backend)
        judges = _judges(config, client, tasks)
        manifest = build_manifest(config, backend, tasks, variants, judges)
        mhash = manifest_hash(manifest)
        store = RunStore(choose_run_dir(config, mhash))
        with store.locked():  # until the results are written: no second process can interleave
            state = store.read_state()
            if state and state.get("manifest_hash") != mhash:
                raise ConfigError(
                    f"{store.dir} holds a different run (its manifest differs); "
                    "choose another --output to start a new run"
                )
            store.write_state(manifest, mhash, "running")
            done = store.finished()
            order = [
                record_key(p.task.name, v.name, s.id) for p in tasks for v in variants for s in p.samples
            ]
            todo = [
                (p, v, s)
                for p in tasks
                for v in variants
                for s in p.samples
                if done.get(record_key(p.task.name, v.name, s.id), "error") == "error"
            ]
            await _prepare_variants(tasks, variants, client, todo)
            store.open_for_append()
            with _collector_for_long_runs():
                try:
                    await _schedule(
                        todo, client, judges, store, config, len(order), len(order) - len(todo), progress
                    )
                finally:
                    store.close()
                store.compact(order)
                results = build_results(store, tasks, variants, manifest, mhash, client, started, config)
            store.write_results(results)
            store.write_state(manifest, mhash, run_status(results["run"]))
        if client.cache is not None:
            client.cache.close()
        return store.dir, results
    finally:
        await backend.close()
        for judge in judges.judges if judges is not None else []:
            if judge.client.backend is not backend:
                await judge.client.backend.close()


def answerers(backend: Backend, tasks: list[PreparedTask], variants: list[Variant]) -> list[Variant]:
    """The run's variants; for a reference baseline, their stand-ins that answer by the baseline under
    the same names (emobench/variants/baseline.py)."""
    if not isinstance(backend, Baseline):
        return variants
    samples = {p.task.name: p.samples for p in tasks}
    return [BaselineAnswers(v, backend, samples) for v in variants]


def _judges(config: RunConfig, client: ModelClient, tasks: list[PreparedTask]) -> JudgePanel | None:
    """The run's judge panel (`--judge`), checked against the tasks: a judged task needs a judge, and a
    judge needs a judged task to score."""
    judged = [p.task.name for p in tasks if rubrics_of(p.task, p.samples)]
    if judged and not config.judges:
        raise ConfigError(
            f"task(s) {', '.join(judged)} are scored by a judge model: pass --judge SPEC[,SPEC...] "
            "(any model spec; see `emobench judge-check` to try a judge first)"
        )
    if config.judges and not judged:
        raise ConfigError("--judge given, but none of the selected tasks is scored by a judge")
    return JudgePanel.from_specs(config.judges, client) if judged else None


def _client(config: RunConfig, backend: Backend) -> ModelClient:
    cache = (
        ResponseCache(Path(config.cache_path) if config.cache_path else cache_dir() / "responses.sqlite")
        if config.use_cache
        else None
    )
    return ModelClient(
        backend,
        cache,
        config.concurrency,
        config.max_retries,
        config.timeout,
        config.system_prompt,
        {"temperature": config.temperature, "max_tokens": config.max_tokens},
        backoff_initial=config.backoff_initial,
        seed=config.seed,
    )


async def _prepare_variants(
    tasks: list[PreparedTask],
    variants: list[Variant],
    client: ModelClient,
    todo: list[tuple[PreparedTask, Variant, Sample]],
) -> None:
    """A variant prepares (retrieval index, few-shot pool, refined instruction, a baseline's answer)
    only for a task with samples left to answer, so a finished task costs nothing on resume. The dev
    split is loaded only when a variant reads it: a small dataset whose dev split is empty must not
    stop a `direct` run."""
    pending = {p.task.name for p, _, _ in todo}
    for p in tasks:
        if p.task.name in pending:
            wanted = any(v.uses_dev for v in variants) and p.task.has_split("dev")
            dev = list(p.task.split_samples("dev")) if wanted else []
            for v in variants:
                await v.prepare(p.task, client, dev)


@contextmanager
def _collector_for_long_runs():
    """The modules, tasks and samples loaded so far live as long as the run: freeze them out of the
    garbage collector's scans, and collect the young generation less often (as mypy does). Without
    this a 50,000-sample run spent a fifth of its time in the collector (6.4 s of 33.5 s; 0.6 s of 24.7 s with)."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def _schedule(
    todo,
    client: ModelClient,
    judges: JudgePanel | None,
    store: RunStore,
    config: RunConfig,
    total: int,
    already: int,
    progress,
) -> None:
    """A fixed pool of workers pulls from one iterator: memory stays flat however many samples."""
    items = iter(todo)
    errors = 0
    if progress is not None:
        progress.start(total, already)

    async def worker() -> None:
        nonlocal errors
        for p, variant, sample in items:
            record = await answer_sample(p.task, variant, sample, client, judges)
            # Let a waiting worker (its prompt already rendered) send its request before this one does
            # its bookkeeping: keeps the bookkeeping off the request path (see `n_workers`).
            await asyncio.sleep(0)
            store.append(record)
            errors += record.outcome == "error"
            if progress is not None:
                progress.advance(errors)

    # Twice as many workers as calls allowed in flight (the ModelClient semaphore enforces the limit):
    # when a reply arrives, a worker that is already waiting at the semaphore sends the next request at
    # once, instead of after this sample's parse/score/write and the next prompt's rendering (at high
    # concurrency that CPU work would otherwise queue up behind each burst of replies).
    n_workers = max(1, min(2 * config.concurrency, len(todo)))
    workers = [asyncio.ensure_future(worker()) for _ in range(n_workers)]
    try:
        await asyncio.gather(*workers)
    except BaseException:  # a full disk or a bad template: stop every worker before the log is closed
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    finally:
        if progress is not None:
            progress.stop()
