"""The `emobench compare` report in four formats: a terminal table, markdown (a CI job summary or a
pull-request comment), JUnit XML (one test case per task) and JSON (the report as it is)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from .errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_REGRESSION, EXIT_SAMPLES_FAILED

HEADERS = [
    "task",
    "metric",
    "n",
    "failed",
    "baseline",
    "candidate",
    "delta [95% CI]",
    "max drop",
    "test",
    "p",
    "p (Holm)",
    "status",
]
BLOCKED = ("incomparable", "missing")


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def _cells(r: dict[str, Any]) -> list[str]:
    ci = "-" if r["delta"] is None else f"{r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
    why = [*r["reasons"], *([r["failed"]] if r.get("failed") else [])]
    status = r["status"] + (f" ({'; '.join(why)})" if why else "")
    test = "-" if r["test"] is None else f"{r['test']} {r['worse']}↓/{r['better']}↑"
    return [
        r["name"],
        r["metric"] or "-",
        str(r["n_paired"]),
        str(r["n_errors"]),
        _num(r["baseline"]),
        _num(r["candidate"]),
        ci,
        format(r["max_drop"], "g"),
        test,
        _num(r["p"], ".3g"),
        _num(r["p_holm"], ".3g"),
        status,
    ]


def _title(report: dict[str, Any]) -> str:
    return (
        f"emobench compare: {report['candidate']['model']} vs baseline {report['baseline']['model']} "
        f"(max drop {report['max_drop']:g}, alpha {report['alpha']:g}, "
        f"allow errors {report['allow_errors']})"
    )


def _notes(report: dict[str, Any]) -> list[str]:
    """Warnings and per-task notes, one line each: what a reader must know beside the numbers."""
    lines = [f"warning: {w}" for w in report["warnings"]]
    lines += [f"note: {r['name']}: {n}" for r in report["rows"] for n in r["notes"]]
    return lines + [
        f"{report['units']}; failed = candidate samples that failed where the baseline has a result"
    ]


def format_table(report: dict[str, Any]) -> str:
    rows = [HEADERS] + [_cells(r) for r in report["rows"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = [_title(report), ""]
    for j, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", *_notes(report), "", f"verdict: {report['verdict']} (exit {report['exit_code']})"]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def format_markdown(report: dict[str, Any]) -> str:
    icons = {EXIT_OK: "✅", EXIT_REGRESSION: "❌", EXIT_BAD_INPUT: "⚠️", EXIT_SAMPLES_FAILED: "❌"}
    icon = icons[report["exit_code"]]
    lines = [
        f"### {icon} {_md_escape(_title(report))}",
        "",
        f"**Verdict: {_md_escape(report['verdict'])}** (exit {report['exit_code']}).",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for r in report["rows"]:
        cells = [_md_escape(c) for c in _cells(r)]
        if r["status"] in ("regression", "errors"):
            cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        *[f"- {_md_escape(n)}" for n in _notes(report)],
        "",
        f"<sub>{_md_escape(report['method'])}.</sub>",
        "",
    ]
    return "\n".join(lines)


def format_junit(report: dict[str, Any]) -> str:
    """JUnit XML, one test case per task: a regression is a failure; failed candidate samples beyond
    the allowance, and a task that cannot be compared, are errors."""
    rows = report["rows"]
    suite = ET.Element(
        "testsuite",
        name="emobench.compare",
        tests=str(len(rows)),
        failures=str(sum(r["status"] == "regression" for r in rows)),
        errors=str(sum(r["status"] in (*BLOCKED, "errors") for r in rows)),
        time="0",
    )
    props = ET.SubElement(suite, "properties")
    for k in ("max_drop", "alpha", "allow_errors"):
        ET.SubElement(props, "property", name=k, value=str(report[k]))
    ET.SubElement(props, "property", name="baseline", value=report["baseline"]["model"])
    ET.SubElement(props, "property", name="candidate", value=report["candidate"]["model"])
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname="emobench.compare", name=r["name"], time="0")
        summary = "  ".join(f"{h}={c}" for h, c in zip(HEADERS, _cells(r), strict=True))
        if r["status"] == "regression":
            fell = r.get("failed") or f"{r['metric']} fell by {-r['delta']:.3f}"
            ET.SubElement(case, "failure", message=f"{r['name']}: {fell}", type="regression").text = summary
        elif r["status"] == "errors":
            ET.SubElement(
                case,
                "error",
                message=f"{r['name']}: {r['n_errors']} candidate sample(s) failed",
                type="errors",
            ).text = summary
        elif r["status"] in BLOCKED:
            ET.SubElement(
                case, "error", message=f"{r['name']}: {'; '.join(r['reasons'])}", type=r["status"]
            ).text = summary
        else:
            ET.SubElement(case, "system-out").text = summary
    ET.SubElement(suite, "system-out").text = "\n".join(_notes(report))
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def format_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


FORMATS = {"table": format_table, "markdown": format_markdown, "junit": format_junit, "json": format_json}
