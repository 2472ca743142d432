"""`emobench show RUN_DIR`: the results of a finished run, as a table, CSV, JSON or its samples; for a
probe run (`emobench probe`), its summary, its per-layer metrics (CSV) or its summaries (JSON)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory or results.json")
    p.add_argument(
        "--format",
        "-f",
        choices=["table", "csv", "json"],
        default="table",
        help="table (default), csv or json (one row per task x variant x metric)",
    )
    p.add_argument("--samples", action="store_true", help="list the samples instead (csv/json: every field)")
    p.add_argument(
        "--outcome",
        choices=["correct", "incorrect", "unparseable", "error"],
        help="with --samples: only samples with this outcome",
    )
    p.add_argument(
        "--limit", type=int, default=20, help="with --samples --format table: rows shown (default 20)"
    )


def show_probe(path, fmt: str) -> None:
    import json

    from ..probe.report import layer_rows, read_report, summary_lines

    report = read_report(path)
    if fmt == "table":
        print("\n".join(summary_lines(report)))
    elif fmt == "json":
        print(
            json.dumps(
                {
                    "manifest": report["manifest"],
                    "summary": {pool: body["summary"] for pool, body in report["pools"].items()},
                },
                indent=2,
            )
        )
    else:
        import pandas as pd

        pd.DataFrame(layer_rows(report)).to_csv(sys.stdout, index=False)


def run(args: argparse.Namespace) -> int:
    from ..frames import load_results, load_samples, read_results, resolve_paths
    from ..probe.report import probe_path
    from ..runstore import RESULTS

    probe = probe_path(args.run_dir)
    if probe.is_file() and not args.samples:
        show_probe(probe, args.format)
        if not (probe.parent / RESULTS).is_file():
            return 0
    path = resolve_paths([args.run_dir])[0]
    if args.samples:
        df = load_samples(path)
        if args.outcome:
            df = df[df.outcome == args.outcome]
        if args.format == "table":
            cols = ["task", "variant", "sample_id", "outcome", "score", "parsed", "target", "response"]
            view = df[cols].head(args.limit).copy()
            view["response"] = view["response"].astype(str).str.replace("\n", " ").str.slice(0, 60)
            print(view.to_string(index=False))
            print(f"({len(view)} of {len(df)} samples)")
            return 0
    elif args.format == "table":
        from ..printing import print_results

        print_results(read_results(path))
        return 0
    else:
        df = load_results(path)
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
    else:
        print(df.to_json(orient="records", indent=2, force_ascii=False))
    return 0
