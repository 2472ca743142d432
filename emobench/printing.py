"""The results table that `emobench run`, `show`, `rescore` and `import` print: one row per task and
variant with its primary metric, 95% CI, outcome counts, calls per sample and its delta against
`direct`. rich is imported when a table is printed, not before."""

from __future__ import annotations

from typing import Any


def fmt_metric(m: dict[str, Any] | None) -> str:
    """`value [ci_low, ci_high]`, or `-` for a metric without a value."""
    if not m or m.get("value") is None:
        return "-"
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def print_results(results: dict[str, Any]) -> None:
    """The results table of a results.json body, and a line on failed samples when there are any."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"emobench results: {results['manifest']['model']['spec']}")
    for col in (
        "task",
        "variant",
        "metric",
        "value [95% CI]",
        "n",
        "strict",
        "unparseable",
        "errors",
        "calls/sample",
        "Δ vs direct [95% CI]",
    ):
        table.add_column(col, overflow="fold")
    for e in results["results"]:
        metric = e["primary_metric"]
        delta = e.get("vs_direct")
        delta_text = "-"
        if delta and delta.get("delta") is not None:
            delta_text = f"{delta['delta']:+.3f} [{delta['ci_low']:+.3f}, {delta['ci_high']:+.3f}]"
            if delta.get("cost_multiple"):
                delta_text += f" ×{delta['cost_multiple']:.1f} cost"
        m = e["metrics"].get(metric)
        strict = e["metrics"].get("strict_accuracy") if metric == "accuracy" else None  # stated answers only
        cps = e["usage"]["calls_per_sample"]
        table.add_row(
            e["task"],
            e["variant"],
            metric,
            fmt_metric(m),
            str(m["n"] if m else 0),
            f"{strict['value']:.3f}" if strict else "-",
            f"{e['n_unparseable']} ({(e['parse_failure_rate'] or 0):.0%})",
            str(e["n_errors"]),
            f"{cps:.2f}" if cps is not None else "-",
            delta_text,
        )
    Console(width=160).print(table)
    if results["run"]["n_errors"]:
        print(
            f"{results['run']['n_errors']} samples failed (model call errors); rerun the same command to retry them."
        )
