"""`emobench list tasks|models|variants|suites`: what exists, one line each."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["tasks", "models", "variants", "suites"])
    p.add_argument("--task-file", action="append", default=[], metavar="YAML")


def run(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from ..registry import all_tasks

        for name, cls in sorted(all_tasks(args.task_file).items()):
            n = cls.size if cls.size is not None else "?"
            print(f"{name:<24} {cls.family:<16} n={n!s:<6} {cls.primary_metric:<12} {cls.description}")
    elif args.what == "models":
        from ..models import BACKENDS

        print(f"{'(default)':<24} the embedded SmolLM2-135M-Instruct GGUF on the CPU (extra: local)")
        for prefix, (_, _, desc) in BACKENDS.items():
            spec = prefix if prefix in ("random", "majority") else f"{prefix}/<model>"
            print(f"{spec:<24} {desc}")
    elif args.what == "variants":
        from ..variants import VARIANTS

        for name, (_, _, desc) in VARIANTS.items():
            print(f"{name:<24} {desc}")
    else:
        from ..registry import suite_descriptions, suites

        descriptions = suite_descriptions()
        for name, tasks in suites().items():
            print(f"{name:<24} {', '.join(tasks)}  {descriptions.get(name, '')}")
    return 0
