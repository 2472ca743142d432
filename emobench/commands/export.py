"""`emobench export lm-eval --out DIR`: write lm-evaluation-harness task YAMLs for emobench tasks. No data
is read here (lm-eval has emobench load it when it runs a task), so an export works offline."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .common import key_values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=["lm-eval"], help="target harness")
    p.add_argument("--out", required=True, help="directory for the task YAMLs and utils.py")
    p.add_argument(
        "--tasks", "-t", default=None, help="comma-separated tasks or suites (default: every built-in task)"
    )
    p.add_argument("--task-file", action="append", default=[], metavar="YAML", help="a no-code task file")
    p.add_argument("--task-arg", action="append", metavar="K=V", help="task option, as for `emobench run`")
    p.add_argument(
        "--data-dir",
        default=None,
        help="local folder with the original dataset files, read when "
        "lm-eval runs the tasks (default: $EMOBENCH_DATA_DIR where lm-eval runs, else the hub)",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="first N samples of each task, when lm-eval loads them"
    )


def run(args: argparse.Namespace) -> int:
    from ..lmeval_export import export_tasks
    from ..registry import builtin_tasks, resolve_task_names

    if args.tasks:
        names = resolve_task_names(args.tasks, args.task_file)
    else:
        names = sorted(builtin_tasks()) + (resolve_task_names(None, args.task_file) if args.task_file else [])
    exported, skipped = export_tasks(
        args.out, names, key_values(args.task_arg, "--task-arg"), args.task_file, args.data_dir, args.limit
    )
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    if not exported:
        raise ConfigError("no task could be exported (see the reasons above)")
    print(f"wrote {len(exported)} lm-eval task(s) to {args.out}: {', '.join(exported)}")
    print(
        f"lm-eval has emobench load the samples when it runs a task, from "
        f"{args.data_dir or '$EMOBENCH_DATA_DIR or the Hugging Face hub'}"
    )
    print(
        f"run: lm_eval --include_path {args.out} --tasks {exported[0]} --apply_chat_template "
        "--model hf --model_args pretrained=<model>"
    )
    return 0
