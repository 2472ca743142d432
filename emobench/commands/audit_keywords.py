"""`emobench audit-keywords FILE`: the leakage audit of a keyword-free vignette battery.

Prints one line per problem (`file:line: item id: what`), then a summary of the three checks (lexicon,
bag-of-words classifier against chance, affect/neutral pair match). Exits 1 when an emotion keyword is
in a keyword-free item or a pair is not matched (with `--strict`, also when the bag-of-words classifier
is significantly above chance), 0 otherwise, 2 when the file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file",
        metavar="FILE",
        help="items, JSONL or CSV: id, pair_id, kind, emotion, text "
        "(default: the shipped battery tasks/data/vignettes.jsonl)",
        nargs="?",
    )
    p.add_argument(
        "--max-length-diff",
        type=float,
        default=0.15,
        help="allowed relative length difference of a neutral control (default 0.15)",
    )
    p.add_argument("--lexicon", default=None, help="emotion keyword file (default: the built-in lexicon)")
    p.add_argument(
        "--no-neutral-ok", action="store_true", help="do not require a neutral control per affect item"
    )
    p.add_argument(
        "--strict", action="store_true", help="also fail when the bag-of-words check is above chance"
    )
    p.add_argument("--pairs", action="store_true", help="print the length/structure row of every pair")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")


def run(args: argparse.Namespace) -> int:
    from ..audit import audit, counts_by, load_lexicon, read_items
    from ..paths import tasks_dir

    path = args.file or str(tasks_dir() / "data" / "vignettes.jsonl")
    items = read_items(path)
    lexicon = load_lexicon(args.lexicon) if args.lexicon else None
    report = audit(items, args.max_length_diff, lexicon, require_neutral=not args.no_neutral_ok)
    bow = report.bow
    if args.strict and bow.get("near_chance") is False:
        report.problems.append(
            f"{path}: bag-of-words classifier is above chance on keyword-free items "
            f"({bow['accuracy']:.1%}, 95% CI {bow['ci_low']:.1%}-{bow['ci_high']:.1%})"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "file": path,
                    "items": report.items,
                    "ok": report.ok,
                    "problems": report.problems,
                    "keyword_hits": report.keyword_hits,
                    "bag_of_words": bow,
                    "pairs": report.pairs,
                },
                indent=2,
            )
        )
        return 0 if report.ok else 1
    for line in report.problems:
        print(line, file=sys.stderr)
    kinds = counts_by(items)
    print(
        f"{path}: {report.items} items: "
        + ", ".join(f"{sum(c.values())} {k}" for k, c in sorted(kinds.items()))
    )
    free = sum(1 for it in items if it.keyword_free)
    print(f"  lexicon:      {report.keyword_hits} emotion keyword(s) in {free} keyword-free items")
    if "accuracy" in bow:
        verdict = "near chance" if bow["near_chance"] else "ABOVE chance"
        print(
            f"  bag of words: {bow['accuracy']:.1%} (95% CI {bow['ci_low']:.1%}-{bow['ci_high']:.1%}) on "
            f"{bow['n_test']} held-out keyword-free items, chance {bow['chance']:.1%}: {verdict} "
            f"(trained on {bow['n_train']} keyword-rich items; {bow['keyword_rich_loo_accuracy']:.1%} on "
            "held-out keyword-rich ones)"
        )
    else:
        print(f"  bag of words: skipped ({bow['skipped']})")
    matched = [r for r in report.pairs if r["matched"]]
    ratios = [r["length_ratio"] for r in report.pairs if r.get("length_ratio") is not None]
    span = f", length ratio {min(ratios):.2f}-{max(ratios):.2f}" if ratios else ""
    print(
        f"  pairs:        {len(matched)}/{len(report.pairs)} matched (±{args.max_length_diff:.0%} length, "
        f"same sentence count){span}"
    )
    if args.pairs:
        for r in report.pairs:
            print(
                f"    {r['pair_id']:<20} ratio {r.get('length_ratio', float('nan')):.2f}  sentences "
                f"{r.get('sentences_affect', '-')}/{r.get('sentences_neutral', '-')}  "
                f"{'ok' if r['matched'] else 'NOT MATCHED'}"
            )
    print("  result:       " + ("ok" if report.ok else f"{len(report.problems)} problem(s)"))
    return 0 if report.ok else 1
