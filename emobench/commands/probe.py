"""`emobench probe`: linear probes on a model's hidden states over a vignette battery (affect reception,
emotion categorization, keyword dependence, controls, geometry), written to probe.json and SVG curves."""

from __future__ import annotations

import argparse
import sys

from .common import key_values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="hf/<hub id or local path> (default: hf/smollm2, the embedded SmolLM2-135M-Instruct)",
    )
    p.add_argument(
        "--model-arg",
        action="append",
        metavar="K=V",
        help="hf backend option (dtype, device, revision, gguf_file, chat_template...), repeatable",
    )
    p.add_argument(
        "--battery",
        "-b",
        default="vignettes",
        help="vignettes (shipped, default), aipsy_affect, or a JSONL/CSV file in the vignette layout",
    )
    p.add_argument(
        "--data-dir", default=None, help="local folder with AIPsy-Affect's parquet files (else the hub)"
    )
    p.add_argument("--layers", default="all", help="all (default) or layer numbers and ranges: 0,8,16-20")
    p.add_argument(
        "--pool", default="mean", help="mean (over the item's tokens), last (last token) or mean,last"
    )
    p.add_argument(
        "--chat-template",
        action="store_true",
        help="wrap each item as a user message in the model's chat template",
    )
    p.add_argument(
        "--folds", type=int, default=5, help="outer cross-validation folds, grouped by pair (default 5)"
    )
    p.add_argument(
        "--permutations", type=int, default=20, help="label permutations per layer for the null (default 20)"
    )
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--batch-size", type=int, default=None, help="items per forward pass (default: the backend's)"
    )
    p.add_argument(
        "--output",
        "-o",
        default=None,
        help="run directory (default: runs/probe_<model>_<battery>_<hash>/, reused by re-runs)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from ..probe.report import summary_lines
    from ..probe.run import ProbeConfig, run_probe

    config = ProbeConfig(
        model=args.model,
        model_args=key_values(args.model_arg, "--model-arg"),
        battery=args.battery,
        data_dir=args.data_dir,
        layers=args.layers,
        pools=tuple(p.strip() for p in args.pool.split(",") if p.strip()),
        chat_template=args.chat_template,
        folds=args.folds,
        permutations=args.permutations,
        seed=args.seed,
        batch_size=args.batch_size,
        output=args.output,
    )

    def progress(done: int, total: int) -> None:
        print(
            f"\rhidden states: {done}/{total} items",
            end="" if done < total else "\n",
            file=sys.stderr,
            flush=True,
        )

    run_dir, report = run_probe(config, None if args.quiet else progress)
    print("\n".join(summary_lines(report)))
    print(f"\nrun directory: {run_dir}")
    return 0
