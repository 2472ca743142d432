"""`emobench leaderboard build CONFIG --out site/`: render the static leaderboard site."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser(
        "build", help="collect results and write the site, leaderboard.csv and leaderboard.json"
    )
    b.add_argument(
        "config", help="leaderboard file, e.g. leaderboards/core.yaml, or the name of a built-in one (core)"
    )
    b.add_argument("--out", "-o", default="site", help="output folder (default: site/)")
    b.add_argument(
        "--runs",
        nargs="+",
        metavar="PATH",
        help="run directories, results files or globs to use instead of the file's `runs`",
    )
    b.add_argument("--max-samples", type=int, default=500, help="samples per browser page (default 500)")


def _config_path(value: str) -> Path:
    from ..paths import leaderboards_dir

    p = Path(value)
    if not p.exists() and not p.suffix and (leaderboards_dir() / f"{value}.yaml").exists():
        return leaderboards_dir() / f"{value}.yaml"
    return p


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..leaderboard import build_site, collect, load_config

    config = load_config(_config_path(args.config))
    board = collect(config, args.runs)
    if not board.entries:
        raise ConfigError(f"{config.path}: no results found for its tasks in {args.runs or config.runs}")
    counts = build_site(board, args.out, max_samples=args.max_samples)
    ranked = sum(r.overall is not None for r in board.models)
    print(
        f"leaderboard {config.name}: {len(board.models)} models ({ranked} with an overall score), "
        f"{len(config.tasks)} tasks, {counts['sample_pages']} sample pages -> {Path(args.out) / 'index.html'}"
    )
    for flag in board.flags:
        print(f"  flagged: {flag}")
    return 0
