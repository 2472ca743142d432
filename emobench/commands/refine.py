"""`emobench refine`: optimise a task's instruction on its dev split with the APOLO-style agents
(see emobench/variants/refine.py) and save the artifact that `--variant refine` reuses."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from .common import add_model_arguments, key_values


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    g = p.add_argument_group("refinement")
    g.add_argument("--task", "-t", required=True, help="the task whose instruction is refined")
    g.add_argument("--task-arg", action="append", metavar="K=V", help="task option, repeatable")
    g.add_argument("--data-dir", default=None, help="local folder with the original dataset files")
    for role in ("planner", "teacher", "critic", "student"):
        g.add_argument(f"--{role}", default=None, help=f"model spec of the {role} agent (default: --model)")
    g.add_argument("--max-rounds", type=int, default=3)
    g.add_argument("--patience", type=int, default=2, help="stop after this many rounds without improvement")
    g.add_argument("--max-calls", type=int, default=300, help="budget: agent calls + dev answers")
    g.add_argument(
        "--dev-limit", type=int, default=40, help="first N dev items scored by the Target (0: all)"
    )
    g.add_argument("--variant-arg", action="append", metavar="K=V", help="any other refine option")
    g.add_argument("--output", "-o", default=None, help="artifact folder (default: prompts/refined/)")
    g.add_argument("--force", action="store_true", help="optimise again even if a matching artifact exists")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    g.add_argument("--cache", default=None, help="cache file (default: $EMOBENCH_CACHE_DIR/responses.sqlite)")


def run(args: argparse.Namespace) -> int:
    artifact, path = asyncio.run(_refine(args))
    print(
        f"task {args.task}: {artifact['metric']} on dev, stop: {artifact['stop_reason']}"
        f"{' (reused artifact)' if artifact.get('reused') else ''}"
    )
    for h in artifact["history"]:
        score = "-" if h["dev_score"] is None else f"{h['dev_score']:.3f}"
        print(f"  round {h['round']}: {score}  {h['decision']}")
    u = artifact["usage"]
    print(
        f"cost: {u['calls']} calls ({u['cached_calls']} cached), {u['prompt_tokens']} prompt + "
        f"{u['completion_tokens']} completion tokens"
        + (f", ${u['cost_usd']:.4f}" if u.get("cost_usd") else "")
    )
    print(f"best instruction:\n{artifact['best_instruction']}\n\nartifact: {path}")
    return 0


async def _refine(args: argparse.Namespace):
    from ..cache import ResponseCache
    from ..client import ModelClient
    from ..errors import ConfigError
    from ..models import make_backend
    from ..paths import cache_dir
    from ..registry import make_tasks
    from ..variants.refine import Refine

    task = make_tasks([args.task], key_values(args.task_arg, "--task-arg"), args.data_dir)[0]
    if not task.has_split("dev"):
        raise ConfigError(
            f"task {task.name} has no dev split (splits: {', '.join(task.splits)}); "
            "refine only ever optimises on dev items: hold some out with --task-arg dev_size=N"
        )
    options = key_values(args.variant_arg, "--variant-arg")
    options.update(
        {
            role: getattr(args, role)
            for role in ("planner", "teacher", "critic", "student")
            if getattr(args, role)
        }
    )
    options.update(
        max_rounds=args.max_rounds,
        patience=args.patience,
        max_calls=args.max_calls,
        dev_limit=args.dev_limit or None,
        reuse=not args.force,
    )
    if args.output:
        options["artifact_dir"] = args.output
    variant = Refine(**options)
    backend = make_backend(
        args.model,
        key_values(args.model_arg, "--model-arg"),
        base_url=args.base_url,
        timeout=args.timeout,
        concurrency=args.concurrency,
    )
    cache = (
        None
        if args.no_cache
        else ResponseCache(Path(args.cache) if args.cache else cache_dir() / "responses.sqlite")
    )
    client = ModelClient(
        backend,
        cache,
        args.concurrency,
        args.max_retries,
        args.timeout,
        args.system_prompt,
        {"temperature": args.temperature, "max_tokens": args.max_tokens},
    )
    try:
        return await variant.optimise(task, client, list(task.split_samples("dev")))
    finally:
        await backend.close()
        if cache is not None:
            cache.close()
