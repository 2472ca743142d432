"""`emobench run`: schedule every (task, variant, sample), append each finished sample, then score.

Data flows one way: task -> samples -> variant -> ModelClient -> parse -> score -> run log -> results.
A sample already finished in the run directory is never asked again; a request answered in any earlier
run is served by the response cache. So a killed run, started again with the same command, resumes
with no repeated model call for finished samples.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import re
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .cache import ResponseCache
from .client import ModelClient
from .errors import ConfigError, EmobenchError, ModelCallError
from .models import make_backend, split_spec
from .models.base import Backend, redact
from .paths import cache_dir
from .registry import make_task, resolve_task_names
from .results import build_results
from .runstore import RunStore
from .task import Task
from .types import Sample, SampleRecord, Usage, record_key, stable_hash
from .variants import Variant, VariantOutput, make_variant

PROMPT_CHARS_KEPT = 20_000


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
    quiet: bool = False
    backoff_initial: float = 0.5


@dataclass
class PreparedTask:
    task: Task
    samples: list[Sample]
    fingerprint: str


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_tasks(config: RunConfig) -> list[PreparedTask]:
    prepared = []
    for name in resolve_task_names(config.tasks, config.task_files):
        task = make_task(name, config.task_args, config.data_dir, config.task_files)
        samples = list(itertools.islice(task.split_samples(config.split), config.limit))
        fingerprint = stable_hash([s.fingerprint_payload() for s in samples])[:16]
        prepared.append(PreparedTask(task, samples, fingerprint))
    return prepared


def build_manifest(config: RunConfig, backend: Backend, tasks: list[PreparedTask],
                   variants: list[Variant]) -> dict[str, Any]:
    """Everything that determines the results. Two runs with equal manifests are comparable."""
    return {
        "harness_version": __version__,
        "git_commit": git_commit(),
        "model": {"spec": config.model or "smollm2", **backend.identity(),
                  "generation_overrides": {"temperature": config.temperature, "max_tokens": config.max_tokens},
                  "system_prompt": config.system_prompt},
        "seed": config.seed,
        "split": config.split,
        "limit": config.limit,
        "tasks": {p.task.name: {"args": p.task.args, "dataset_fingerprint": p.fingerprint,
                                "template_hash": p.task.template_hash(), "n": len(p.samples),
                                "family": p.task.family, "output_mode": p.task.output_mode,
                                "generation": asdict(p.task.gen_params)}
                  for p in tasks},
        "variants": {v.name: v.config() for v in variants},
    }


def manifest_hash(manifest: dict[str, Any]) -> str:
    comparable = {k: v for k, v in manifest.items() if k not in ("git_commit",)}
    return stable_hash(comparable)[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "run"


def choose_run_dir(config: RunConfig, mhash: str) -> Path:
    """--output if given; else the latest unfinished run of the same manifest under runs/ (resume);
    else a new runs/<timestamp>_<model>_<suite>/."""
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


def prompt_text(messages: list[dict[str, str]]) -> str:
    text = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
    if len(text) > PROMPT_CHARS_KEPT:
        half = PROMPT_CHARS_KEPT // 2
        text = f"{text[:half]}\n…[{len(text) - PROMPT_CHARS_KEPT} characters not kept]…\n{text[-half:]}"
    return text


async def answer_sample(task: Task, variant: Variant, sample: Sample, client: ModelClient) -> SampleRecord:
    """Ask, parse and score one sample. Never raises: failures become `error` or `unparseable`."""
    usage = Usage()
    backend = client.backend
    start = time.perf_counter()
    out: VariantOutput | None = None
    error: str | None = None
    try:
        if backend.is_baseline:
            answer = backend.predict(task, sample)
            out = VariantOutput([task.format_answer(answer, sample)], task.render(sample), {"baseline": backend.kind})
        else:
            out = await variant.answer(task, sample, client, usage)
    except ModelCallError as exc:
        error = str(exc)
    except EmobenchError:  # a bad template or task configuration: stop the run with one clear line
        raise
    except Exception as exc:  # a bug in a variant or backend must not lose the other samples
        error = redact(f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - start
    messages = out.prompt if out else _safe_render(task, sample)
    text = prompt_text(messages)
    parsed, score, outcome = None, None, "error"
    if out is not None:
        parsed = task.combine([_safe_parse(task, r, sample) for r in out.responses])
        if parsed is None:
            outcome, score = "unparseable", 0.0
        else:
            try:
                score = float(task.score(parsed, sample))
                outcome = "correct" if task_is_correct(task, score) else "incorrect"
            except Exception as exc:
                outcome, score, error = "unparseable", 0.0, f"scoring failed: {type(exc).__name__}: {exc}"
    metadata = dict(sample.metadata)
    if out is not None and out.trace:
        metadata["trace"] = out.trace
    if out is not None and len(out.responses) > 1:
        metadata["responses"] = out.responses
    return SampleRecord(
        key=record_key(task.name, variant.name, sample.id), sample_id=sample.id, task=task.name,
        variant=variant.name, prompt=text, prompt_hash=stable_hash(messages)[:16],
        response=out.responses[0] if out and out.responses else None, parsed=parsed, target=sample.target,
        score=score, outcome=outcome, error=error, latency_s=round(elapsed, 4),
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, calls=usage.calls,
        cached_calls=usage.cached_calls, cost_usd=usage.cost_usd, metadata=metadata)


def task_is_correct(task: Task, score: float) -> bool:
    judge = getattr(task, "is_correct", None)
    return bool(judge(score)) if callable(judge) else score >= 0.5


def _safe_parse(task: Task, text: str, sample: Sample) -> Any:
    try:
        return task.parse(text, sample)
    except Exception:
        return None


def _safe_render(task: Task, sample: Sample) -> list[dict[str, str]]:
    try:
        return task.render(sample)
    except Exception:
        return [{"role": "user", "content": str(sample.input)[:2000]}]


async def run(config: RunConfig, progress=None) -> tuple[Path, dict[str, Any]]:
    started = time.time()
    backend = make_backend(config.model, config.model_args, base_url=config.base_url, timeout=config.timeout,
                           concurrency=config.concurrency)
    try:
        tasks = prepare_tasks(config)
        variants = [make_variant(v, config.variant_args) for v in config.variants]
        manifest = build_manifest(config, backend, tasks, variants)
        mhash = manifest_hash(manifest)
        run_dir = choose_run_dir(config, mhash)
        store = RunStore(run_dir)
        state = store.read_state()
        if state and state.get("manifest_hash") != mhash:
            raise ConfigError(f"{run_dir} holds a different run (its manifest differs); "
                              "choose another --output to start a new run")
        store.write_state(manifest, mhash, "running")
        cache = ResponseCache(Path(config.cache_path) if config.cache_path else cache_dir() / "responses.sqlite") \
            if config.use_cache else None
        client = ModelClient(backend, cache, config.concurrency, config.max_retries, config.timeout,
                             config.system_prompt, {"temperature": config.temperature,
                                                    "max_tokens": config.max_tokens},
                             backoff_initial=config.backoff_initial)
        done = store.finished()
        order = [record_key(p.task.name, v.name, s.id) for p in tasks for v in variants for s in p.samples]
        todo = [(p, v, s) for p in tasks for v in variants for s in p.samples
                if done.get(record_key(p.task.name, v.name, s.id), "error") == "error"]
        for p in tasks:
            if backend.is_baseline:
                backend.prepare(p.task, p.samples)
            elif any(done.get(record_key(p.task.name, v.name, s.id), "error") == "error"
                     for v in variants for s in p.samples):
                for v in variants:
                    dev = list(p.task.split_samples("dev")) if p.task.has_split("dev") else []
                    await v.prepare(p.task, client, dev)
        store.open_for_append()
        with _collector_for_long_runs():
            try:
                await _schedule(todo, client, store, config, len(order), len(order) - len(todo), progress)
            finally:
                store.close()
            store.compact(order)
            results = build_results(store, tasks, variants, manifest, mhash, client, started, config)
        store.write_results(results)
        store.write_state(manifest, mhash, "complete")
        if cache is not None:
            cache.close()
        return run_dir, results
    finally:
        await backend.close()


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


async def _schedule(todo, client: ModelClient, store: RunStore, config: RunConfig, total: int,
                    already: int, progress) -> None:
    """A fixed pool of workers pulls from one iterator: memory stays flat however many samples."""
    items = iter(todo)
    errors = 0
    if progress is not None:
        progress.start(total, already)

    async def worker() -> None:
        nonlocal errors
        for p, variant, sample in items:
            record = await answer_sample(p.task, variant, sample, client)
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
