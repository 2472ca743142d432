"""`emobench import FILE... --tasks TASK --model-name NAME -o RUN_DIR`: turn predictions made elsewhere
into a run directory (samples.jsonl + results.json, the schema of `emobench run`), scored by the
task's own parser, vote and metrics.

Accepted files: a generic JSONL (`{"sample_id": ..., "prediction": "<reply>" or [replies]}`) or CSV
(`sample_id,prediction`), or a task's native result files (the EmoBench authors' CSVs with `Pred 1..5`
columns: one file per choice order, the original order first)."""

from __future__ import annotations

import argparse

from .common import key_values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="prediction file(s)")
    p.add_argument("--tasks", "-t", required=True, help="the task the predictions answer")
    p.add_argument("--task-arg", action="append", metavar="K=V", help="task option, e.g. protocol=paper")
    p.add_argument("--task-file", action="append", default=[], metavar="YAML", help="a no-code task file")
    p.add_argument("--model-name", required=True, help="name of the model that made the predictions")
    p.add_argument("--output", "-o", required=True, help="run directory to create")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--data-dir",
        default=None,
        help="local folder with the original dataset files "
        "(else $EMOBENCH_DATA_DIR, else the Hugging Face hub)",
    )


def run(args: argparse.Namespace) -> int:
    from ..printing import print_results
    from ..rescore import import_predictions

    results = import_predictions(
        args.files,
        args.tasks,
        args.output,
        args.model_name,
        key_values(args.task_arg, "--task-arg"),
        args.data_dir,
        args.split,
        args.task_file,
    )
    print_results(results)
    print(f"\nrun directory: {args.output}")
    return 0
