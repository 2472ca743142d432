"""The results table that `emobench run`, `show`, `rescore` and `import` print: one row per task and
variant with its primary metric, 95% CI, outcome counts, calls per sample and its delta against
`direct`. rich is imported when a table is printed, not before."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fmt_metric(m: dict[str, Any] | None) -> str:
    """`value [ci_low, ci_high]`, or `-` for a metric without a value."""
    if not m or m.get("value") is None:
        return "-"
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def print_results(results: Mapping[str, Any]) -> None:
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
    for e in results["results"]:
        if e.get("judge"):
            print(judge_line(e))
        if e.get("variant_metrics", {}).get("spread"):
            print(robustness_line(e))
    if results["run"]["n_errors"]:
        print(
            f"{results['run']['n_errors']} samples failed (model call errors); rerun the same command to retry them."
        )


def judge_line(entry: Mapping[str, Any]) -> str:
    """Who judged a judged task, each judge's score and cost, the panel's agreement and the samples no
    judge could score (they are not in the table's `unparseable`, which counts the model's)."""
    judge = entry["judge"]
    parts = []
    for j in judge["judges"]:
        u = j["usage"]
        cost = f", ${u['cost_usd']:.4f}" if u.get("cost_usd") is not None else ""
        flag = " [self-preference: it is the model under test]" if j.get("self_preference") else ""
        parts.append(
            f"{j['judge']} {fmt_metric(j['score'])} ({u['calls']} calls, "
            f"{u['prompt_tokens'] + u['completion_tokens']} tokens{cost}){flag}"
        )
    line = f"{entry['task']}/{entry['variant']} judged by " + "; ".join(parts)
    agreement = judge.get("agreement")
    if agreement:
        line += (
            f"; agreement: Krippendorff alpha {fmt_metric(agreement['krippendorff_alpha'])}, "
            f"ICC(2,k) {fmt_metric(agreement['icc2k'])}"
        )
    return line + f"; judge reply unreadable on {judge['n_judge_unparseable']} sample(s)"


def robustness_line(entry: Mapping[str, Any]) -> str:
    """A `permute`/`paraphrase` result's robustness: the metric per order or wording, the spread against
    what noise alone gives, consistency and (permute) the position bias."""
    vm = entry["variant_metrics"]
    per = vm.get("per_order") or vm.get("per_template") or {}
    scores = ", ".join(f"{name} {m['value']:.3f}" for name, m in per.items())
    null = vm.get("spread_null") or {}
    line = (
        f"{entry['task']}/{entry['variant']}: {vm['metric']} per {'order' if 'per_order' in vm else 'wording'} "
        f"{scores}; spread {fmt_metric(vm['spread'])} (noise alone: {null.get('null_mean', float('nan')):.3f}, "
        f"p={null.get('p_value', float('nan')):.3f}); consistency {fmt_metric(vm.get('consistency'))}"
    )
    for name, bias in (vm.get("position_bias") or {}).items():
        if bias.get("total_variation"):
            line += f"; position bias ({name}) TVD {fmt_metric(bias['total_variation'])}"
    return line
