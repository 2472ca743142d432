"""The CI regression gate: is the candidate run significantly worse than the baseline on any task?

Per (task, variant) present in both runs, samples are paired by sample id (samples whose model call
failed in either run are left out). For each pair of per-sample scores we report:

- the score delta: mean(candidate - baseline), i.e. the change in accuracy for choice tasks;
- its paired bootstrap 95% CI (`emobench.results.paired_delta`);
- an exact two-sided test: McNemar's exact (binomial) test on the discordant pairs when every score
  is 0/1, else the sign test on the non-zero differences (the same binomial tail);
- the Holm-adjusted p-value across all compared tasks (family-wise error rate <= alpha).

A task *regresses* when its drop exceeds the margin (`-delta > max_drop`) **and** its Holm-adjusted
p-value is below alpha: a big but noisy drop on 20 samples is not a regression, nor is a tiny but
certain one. Runs whose manifests differ in dataset fingerprint, template hash or generation
parameters for a task are incomparable (exit code 2) unless forced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .frames import iter_samples, model_label, read_results, resolve_paths
from .results import paired_delta

EXIT_OK, EXIT_REGRESSION, EXIT_INCOMPARABLE = 0, 1, 2


@dataclass
class Side:
    """One run: its results file and the per-sample scores of each (task, variant)."""

    path: Path
    results: dict[str, Any]
    scores: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return model_label(self.results)


def load_side(path: str | Path) -> Side:
    files = resolve_paths([path])
    if len(files) != 1:
        raise ConfigError(f"{path}: expected one run, found {len(files)} results files")
    results = read_results(files[0])
    side = Side(files[0], results)
    n_records = 0
    for rec in iter_samples(files[0]):
        n_records += 1
        if rec.get("outcome") == "error":
            continue
        side.scores.setdefault((rec["task"], rec["variant"]), {})[str(rec["sample_id"])] = float(rec.get("score") or 0.0)
    if not n_records:
        raise ConfigError(f"{files[0].parent}: no samples.jsonl beside the results file; compare pairs "
                          "samples by id and needs the run directory")
    return side


def comparability_signature(manifest: dict[str, Any], task: str, variant: str) -> dict[str, Any]:
    """What must be equal for two runs of a task to be compared or ranked together."""
    t = manifest.get("tasks", {}).get(task, {})
    model = manifest.get("model", {})
    return {"dataset fingerprint": t.get("dataset_fingerprint"), "template hash": t.get("template_hash"),
            "task args": t.get("args"),
            "generation params": {"task": t.get("generation"), "overrides": model.get("generation_overrides"),
                                  "system_prompt": model.get("system_prompt")},
            "variant config": manifest.get("variants", {}).get(variant)}


def incomparable_reasons(base: dict[str, Any], cand: dict[str, Any], task: str, variant: str) -> list[str]:
    """Why two manifests cannot be compared on one task (empty when they can)."""
    a, b = comparability_signature(base, task, variant), comparability_signature(cand, task, variant)
    return [f"{k} differs" for k in a if a[k] != b[k]]


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (0 <= k <= n); 1.0 when n == 0.
    Summed in log space so that it stays exact enough for n in the tens of thousands."""
    if n == 0:
        return 1.0
    m = min(k, n - k)
    log_half = n * math.log(0.5)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
               for i in range(m + 1))
    return min(1.0, 2.0 * tail)


def paired_test(base: list[float], cand: list[float]) -> dict[str, Any]:
    """McNemar's exact test for 0/1 scores, else the sign test; both reduce to a binomial tail on the
    pairs that changed (worse = baseline better, better = candidate better)."""
    binary = all(v in (0.0, 1.0) for v in (*base, *cand))
    worse = sum(1 for x, y in zip(base, cand, strict=True) if y < x)
    better = sum(1 for x, y in zip(base, cand, strict=True) if y > x)
    return {"test": "mcnemar_exact" if binary else "sign", "worse": worse, "better": better,
            "p": binomial_two_sided(better, worse + better)}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def compare(baseline: str | Path, candidate: str | Path, max_drop: float = 0.02, alpha: float = 0.05,
            tasks: list[str] | None = None, force: bool = False) -> dict[str, Any]:
    """The comparison report (a JSON-ready dict) with its `exit_code`."""
    if max_drop < 0 or not 0 < alpha < 1:
        raise ConfigError("--max-drop must be >= 0 and --alpha in (0, 1)")
    base, cand = load_side(baseline), load_side(candidate)
    keys = [k for k in base.scores if tasks is None or k[0] in tasks]
    if tasks:
        unknown = sorted(set(tasks) - {k[0] for k in base.scores})
        if unknown:
            raise ConfigError(f"{base.path}: no task(s) {', '.join(unknown)} in the baseline")
    if not keys:
        raise ConfigError(f"{base.path}: the baseline has no scored samples to compare")
    rows = [_compare_one(base, cand, key, force) for key in keys]
    tested = [r for r in rows if r["p"] is not None]
    for r, adj in zip(tested, holm([r["p"] for r in tested]), strict=True):
        r["p_holm"] = adj
        r["status"] = _status(r, max_drop, alpha)
    n_reg = sum(r["status"] == "regression" for r in rows)
    blocked = [r for r in rows if r["status"] in ("incomparable", "missing")]
    exit_code = EXIT_INCOMPARABLE if blocked else EXIT_REGRESSION if n_reg else EXIT_OK
    verdict = (f"{len(blocked)} task(s) cannot be compared" if blocked else
               f"{n_reg} task(s) regressed" if n_reg else "no regression")
    return {"baseline": {"model": base.label, "path": str(base.path)},
            "candidate": {"model": cand.label, "path": str(cand.path)},
            "max_drop": max_drop, "alpha": alpha, "forced": force,
            "method": ("delta = mean(candidate - baseline) per-sample score, paired by sample id; 95% CI by "
                       "paired bootstrap; p from McNemar's exact test (0/1 scores) or the sign test, "
                       "Holm-adjusted across tasks; regression = drop > max_drop and p_holm < alpha"),
            "rows": rows, "exit_code": exit_code, "verdict": verdict}


def _compare_one(base: Side, cand: Side, key: tuple[str, str], force: bool) -> dict[str, Any]:
    task, variant = key
    row: dict[str, Any] = {"task": task, "variant": variant, "name": task if variant == "direct" else f"{task}/{variant}",
                           "status": "missing", "n_paired": 0, "baseline": None, "candidate": None, "delta": None,
                           "ci_low": None, "ci_high": None, "test": None, "worse": None, "better": None,
                           "p": None, "p_holm": None, "reasons": []}
    if key not in cand.scores:
        row["reasons"] = ["not in the candidate run"]
        return row
    reasons = incomparable_reasons(base.results["manifest"], cand.results["manifest"], task, variant)
    b, c = base.scores[key], cand.scores[key]
    ids = sorted(set(b) & set(c))
    if not ids:
        reasons.append("no sample id in common")
    row["reasons"] = reasons
    if reasons and (not force or not ids):
        row["status"] = "incomparable"
        return row
    bs, cs = [b[i] for i in ids], [c[i] for i in ids]
    delta = paired_delta({i: b[i] for i in ids}, {i: c[i] for i in ids})
    row.update(n_paired=len(ids), baseline=sum(bs) / len(ids), candidate=sum(cs) / len(ids), delta=delta["delta"],
               ci_low=delta["ci_low"], ci_high=delta["ci_high"], status="ok", **paired_test(bs, cs))
    return row


def _status(row: dict[str, Any], max_drop: float, alpha: float) -> str:
    significant = row["p_holm"] < alpha
    if row["delta"] < -max_drop and significant:
        return "regression"
    if row["delta"] > max_drop and significant:
        return "improved"
    return "ok"


# ---- output formats ---------------------------------------------------------------------------------

HEADERS = ["task", "n", "baseline", "candidate", "delta [95% CI]", "test", "p", "p (Holm)", "status"]


def _cells(r: dict[str, Any]) -> list[str]:
    def num(v: float | None, fmt: str = ".3f") -> str:
        return "-" if v is None else format(v, fmt)

    ci = "-" if r["delta"] is None else f"{r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
    status = r["status"] + (f" ({'; '.join(r['reasons'])})" if r["reasons"] else "")
    test = "-" if r["test"] is None else f"{r['test']} {r['worse']}↓/{r['better']}↑"
    return [r["name"], str(r["n_paired"]), num(r["baseline"]), num(r["candidate"]), ci, test,
            num(r["p"], ".3g"), num(r["p_holm"], ".3g"), status]


def _title(report: dict[str, Any]) -> str:
    return (f"emobench compare: {report['candidate']['model']} vs baseline {report['baseline']['model']} "
            f"(max drop {report['max_drop']:g}, alpha {report['alpha']:g})")


def format_table(report: dict[str, Any]) -> str:
    rows = [HEADERS] + [_cells(r) for r in report["rows"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = [_title(report), ""]
    for j, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", f"verdict: {report['verdict']} (exit {report['exit_code']})"]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def format_markdown(report: dict[str, Any]) -> str:
    icon = {0: "✅", 1: "❌", 2: "⚠️"}[report["exit_code"]]
    lines = [f"### {icon} {_md_escape(_title(report))}", "",
             f"**Verdict: {report['verdict']}.**", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in report["rows"]:
        cells = [_md_escape(c) for c in _cells(r)]
        if r["status"] == "regression":
            cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"<sub>{_md_escape(report['method'])}.</sub>", ""]
    return "\n".join(lines)


def format_junit(report: dict[str, Any]) -> str:
    """JUnit XML, one test case per task: a regression is a failure, an incomparable task an error."""
    import xml.etree.ElementTree as ET

    rows = report["rows"]
    suite = ET.Element("testsuite", name="emobench.compare", tests=str(len(rows)),
                       failures=str(sum(r["status"] == "regression" for r in rows)),
                       errors=str(sum(r["status"] in ("incomparable", "missing") for r in rows)), time="0")
    props = ET.SubElement(suite, "properties")
    for k in ("max_drop", "alpha"):
        ET.SubElement(props, "property", name=k, value=str(report[k]))
    ET.SubElement(props, "property", name="baseline", value=report["baseline"]["model"])
    ET.SubElement(props, "property", name="candidate", value=report["candidate"]["model"])
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname="emobench.compare", name=r["name"], time="0")
        summary = "  ".join(f"{h}={c}" for h, c in zip(HEADERS, _cells(r), strict=True))
        if r["status"] == "regression":
            ET.SubElement(case, "failure", message=f"{r['name']} regressed by {-r['delta']:.3f}",
                          type="regression").text = summary
        elif r["status"] in ("incomparable", "missing"):
            ET.SubElement(case, "error", message=f"{r['name']}: {'; '.join(r['reasons'])}",
                          type=r["status"]).text = summary
        else:
            ET.SubElement(case, "system-out").text = summary
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def format_json(report: dict[str, Any]) -> str:
    import json

    return json.dumps(report, indent=2, ensure_ascii=False)


FORMATS = {"table": format_table, "markdown": format_markdown, "junit": format_junit, "json": format_json}
