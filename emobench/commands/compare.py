"""`emobench compare BASELINE CANDIDATE`: the CI regression gate.

Exit codes (emobench.errors): 0 no regression; 1 a task regressed (its primary metric fell by more
than --max-drop, significantly after Holm); 3 more candidate samples failed than --allow-errors; 2 the
runs cannot be compared (different dataset, template or generation parameters, a task missing, an
incomplete run) or bad input. A regression wins over the others; the verdict names all of them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", help="baseline run directory or results.json")
    p.add_argument("candidate", help="candidate run directory or results.json")
    p.add_argument(
        "--max-drop",
        action="append",
        metavar="X | TASK=X",
        help="largest tolerated drop of a task's primary metric, in that metric's units as "
        "printed (default 0.02: 2 points of accuracy, 0.02 points of eqbench_score's "
        "0-100); TASK=X sets one task's margin; repeatable",
    )
    p.add_argument(
        "--alpha", type=float, default=0.05, help="significance level after Holm correction (default 0.05)"
    )
    p.add_argument(
        "--allow-errors",
        type=int,
        default=0,
        metavar="N",
        help="candidate samples that may fail (model call errors) where the baseline has a "
        "result, in all (default 0: any fails the gate with exit 3)",
    )
    p.add_argument(
        "--tasks", default=None, help="comma-separated tasks to compare (default: all in the baseline)"
    )
    p.add_argument(
        "--task-file",
        action="append",
        default=[],
        metavar="YAML",
        help="the task file of a no-code task, so its metric can be recomputed (else: mean score)",
    )
    p.add_argument(
        "--format",
        "-f",
        choices=["table", "markdown", "junit", "json"],
        default="table",
        help="what to print on stdout (default: table)",
    )
    p.add_argument(
        "--markdown",
        metavar="PATH",
        help="also append the markdown report to PATH (e.g. $GITHUB_STEP_SUMMARY)",
    )
    p.add_argument("--junit", metavar="PATH", help="also write the JUnit XML report to PATH")
    p.add_argument("--json", metavar="PATH", help="also write the JSON report to PATH")
    p.add_argument(
        "--force",
        action="store_true",
        help="compare even when the manifests say the runs are not comparable (the reasons are still shown)",
    )


def margins(values: list[str] | None) -> tuple[float, dict[str, float]]:
    """`--max-drop` values -> (the default margin, per-task margins)."""
    from ..errors import ConfigError

    default, per_task = 0.02, {}
    for value in values or []:
        task, sep, number = value.rpartition("=")
        try:
            x = float(number)
        except ValueError:
            raise ConfigError(f"--max-drop expects a number or TASK=number, got {value!r}") from None
        if sep:
            per_task[task] = x
        else:
            default = x
    return default, per_task


def run(args: argparse.Namespace) -> int:
    from ..compare import compare
    from ..compare_report import FORMATS
    from ..errors import ConfigError

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    max_drop, per_task = margins(args.max_drop)
    report = compare(
        args.baseline,
        args.candidate,
        max_drop=max_drop,
        alpha=args.alpha,
        tasks=tasks,
        force=args.force,
        allow_errors=args.allow_errors,
        task_max_drop=per_task,
        task_files=args.task_file,
    )
    print(FORMATS[args.format](report))
    try:
        if args.markdown:
            with Path(args.markdown).open("a", encoding="utf-8") as fh:
                fh.write(FORMATS["markdown"](report) + "\n")
        if args.junit:
            Path(args.junit).write_text(FORMATS["junit"](report) + "\n", encoding="utf-8")
        if args.json:
            Path(args.json).write_text(FORMATS["json"](report) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report: {exc}") from None
    return int(report["exit_code"])
