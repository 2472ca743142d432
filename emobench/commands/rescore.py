"""`emobench rescore RUN_DIR`: parse and score a run's recorded replies again with the current task
code (after a parser or metric fix), without calling the model; rewrites results.json."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory written by `emobench run` or `emobench import`")
    p.add_argument(
        "--data-dir",
        default=None,
        help="local folder with the original dataset files "
        "(else $EMOBENCH_DATA_DIR, else the Hugging Face hub)",
    )
    p.add_argument(
        "--task-file",
        action="append",
        default=[],
        metavar="YAML",
        help="the no-code task file(s) the run used",
    )


def run(args: argparse.Namespace) -> int:
    from ..printing import print_results
    from ..rescore import rescore_run

    results = rescore_run(args.run_dir, args.data_dir, args.task_file)
    print_results(results)
    info = results["run"]["rescored"]
    print(
        f"\nrescored {args.run_dir}: {info['records_changed']} records changed"
        + (
            f", {info['records_without_sample']} without a matching sample (kept as they were)"
            if info["records_without_sample"]
            else ""
        )
    )
    return 0
