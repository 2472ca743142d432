"""`emobench run`: evaluate a model on tasks and variants; prints a results table.

Exit code 0 when every sample was answered, 3 (`EXIT_SAMPLES_FAILED`) when the run finished with
samples whose model call failed after every retry: a CI job notices without parsing the output, and
rerunning the same command retries only those samples."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from .common import add_model_arguments, add_task_arguments, key_values


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    add_task_arguments(p)
    g = p.add_argument_group("variants")
    g.add_argument("--variant", "-v", default="direct", help="comma-separated variants (default: direct)")
    g.add_argument("--variant-arg", action="append", metavar="K=V", help="variant option, repeatable")
    j = p.add_argument_group("judges")
    j.add_argument(
        "--judge",
        default=None,
        metavar="SPEC[,SPEC...]",
        help="judge model(s) for tasks scored by a judge (LongEmotion MC/ES/EE, task files with a "
        "`judge:` rubric): any model spec; several make a panel (mean score, agreement); `same` is the "
        "model under test",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--output",
        "-o",
        default=None,
        help="run directory (default: runs/<time>_<model>_<tasks>/, "
        "or the unfinished run of the same manifest, which is resumed)",
    )
    o.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    o.add_argument("--cache", default=None, help="cache file (default: $EMOBENCH_CACHE_DIR/responses.sqlite)")
    o.add_argument("--seed", type=int, default=1234)
    o.add_argument("--quiet", "-q", action="store_true", help="no progress bar (CI)")


class Progress:
    """A rich progress bar: done/total, rate, ETA and the error count."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]samples"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f}/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("errors: {task.fields[errors]}"),
            transient=False,
            refresh_per_second=4,
        )

    def start(self, total: int, done: int) -> None:
        import time

        self._t0, self._done0 = time.perf_counter(), done
        self._bar.start()
        self._bar.add_task("run", total=total, completed=done, rate=0.0, errors=0)

    def advance(self, errors: int) -> None:
        import time

        task = self._bar.tasks[0]  # the one task `start` added
        rate = (task.completed + 1 - self._done0) / max(1e-9, time.perf_counter() - self._t0)
        self._bar.update(task.id, advance=1, rate=rate, errors=errors)

    def stop(self) -> None:
        self._bar.stop()


def config_from_args(args: argparse.Namespace):
    from ..manifest import RunConfig

    return RunConfig(
        model=args.model,
        model_args=key_values(args.model_arg, "--model-arg"),
        tasks=args.tasks,
        task_args=key_values(args.task_arg, "--task-arg"),
        task_files=args.task_file,
        variants=[v.strip() for v in args.variant.split(",") if v.strip()],
        variant_args=key_values(args.variant_arg, "--variant-arg"),
        limit=args.limit,
        seed=args.seed,
        concurrency=args.concurrency,
        output=args.output,
        use_cache=not args.no_cache,
        cache_path=args.cache,
        base_url=args.base_url,
        timeout=args.timeout,
        max_retries=args.max_retries,
        system_prompt=args.system_prompt,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        data_dir=args.data_dir,
        judges=[j.strip() for j in (args.judge or "").split(",") if j.strip()],
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import EXIT_OK, EXIT_SAMPLES_FAILED
    from ..printing import print_results
    from ..runner import run as run_eval

    config = config_from_args(args)
    quiet = args.quiet or os.environ.get("CI") == "true" or not sys.stderr.isatty()
    run_dir, results = asyncio.run(run_eval(config, None if quiet else Progress()))
    print_results(results)
    print(f"\nrun directory: {run_dir}")
    return EXIT_SAMPLES_FAILED if results["run"]["n_errors"] else EXIT_OK
