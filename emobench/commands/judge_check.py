"""`emobench judge-check --judge SPEC[,SPEC...]`: how often a judge orders responses of known quality
rightly (good > mediocre > off-topic > harmful), per task, before it is trusted with a run.

Exit code 0 when every judge reaches `--min-accuracy` (pair accuracy) on every task, else 1."""

from __future__ import annotations

import argparse
import asyncio


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge", required=True, metavar="SPEC[,SPEC...]", help="judge model spec(s) to check")
    p.add_argument("--tasks", "-t", default=None, help="comma-separated tasks (default: every shipped set)")
    p.add_argument("--set", action="append", default=[], metavar="JSONL", help="another check set file")
    p.add_argument("--task-file", action="append", default=[], metavar="YAML", help="a no-code task file")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible server URL (else $OPENAI_BASE_URL)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    p.add_argument("--max-retries", type=int, default=6, help="retries of a failed call (default 6)")
    p.add_argument("--concurrency", "-c", type=int, default=8, help="judge calls in flight (default 8)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    p.add_argument(
        "--min-accuracy", type=float, default=0.8, help="pair accuracy a judge must reach (default 0.8)"
    )
    p.add_argument("--format", "-f", choices=["table", "json"], default="table")


async def _check(args: argparse.Namespace) -> dict:
    from ..cache import ResponseCache
    from ..client import ModelClient
    from ..judge import JudgePanel
    from ..judge_check import check, load
    from ..models import make_backend
    from ..paths import cache_dir

    specs = [s.strip() for s in args.judge.split(",") if s.strip()]
    names = [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
    items, tasks = load(args.set, names, args.task_file)
    backend = make_backend(
        specs[0], base_url=args.base_url, timeout=args.timeout, concurrency=args.concurrency
    )
    cache = None if args.no_cache else ResponseCache(cache_dir() / "responses.sqlite")
    client = ModelClient(backend, cache, args.concurrency, args.max_retries, args.timeout)
    panel = JudgePanel.from_specs(specs, client)
    try:
        return await check(panel, items, tasks)
    finally:
        for judge in panel.judges:
            await judge.client.backend.close()
        await backend.close()
        if cache is not None:
            cache.close()


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import EXIT_OK, EXIT_REGRESSION
    from ..printing import fmt_metric

    report = asyncio.run(_check(args))
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        for judge, by_task in report.items():
            for task, r in by_task.items():
                print(
                    f"{judge} on {task}: pairs ordered rightly {fmt_metric(r['pair_accuracy'])} "
                    f"(n={r['pair_accuracy']['n']} pairs), items fully ordered "
                    f"{r['items_fully_ordered']}/{r['items']}, unreadable verdicts {r['unparseable']}; mean score by quality: "
                    + ", ".join(f"{q} {v:.2f}" for q, v in r["mean_score"].items())
                )
    ok = all(r["pair_accuracy"]["value"] >= args.min_accuracy for t in report.values() for r in t.values())
    return EXIT_OK if ok else EXIT_REGRESSION
