"""`emobench compare BASELINE CANDIDATE`: the CI regression gate.

Exit codes: 0 no regression, 1 a task regressed (drop > --max-drop and significant after Holm), 2 the
runs cannot be compared (different dataset, template or generation parameters) or bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "compare two runs per task; exit 1 on a significant regression (CI gate)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", help="baseline run directory or results.json")
    p.add_argument("candidate", help="candidate run directory or results.json")
    p.add_argument("--max-drop", type=float, default=0.02,
                   help="largest tolerated absolute drop of a task's score (default 0.02 = 2 points)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm correction (default 0.05)")
    p.add_argument("--tasks", default=None, help="comma-separated tasks to compare (default: all in the baseline)")
    p.add_argument("--format", "-f", choices=["table", "markdown", "junit", "json"], default="table",
                   help="what to print on stdout (default: table)")
    p.add_argument("--markdown", metavar="PATH", help="also append the markdown report to PATH "
                   "(e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--junit", metavar="PATH", help="also write the JUnit XML report to PATH")
    p.add_argument("--json", metavar="PATH", help="also write the JSON report to PATH")
    p.add_argument("--force", action="store_true",
                   help="compare even when the manifests say the runs are not comparable (reasons are still shown)")


def run(args: argparse.Namespace) -> int:
    from ..compare import FORMATS, compare
    from ..errors import ConfigError

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    report = compare(args.baseline, args.candidate, max_drop=args.max_drop, alpha=args.alpha, tasks=tasks,
                     force=args.force)
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
