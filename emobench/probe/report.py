"""probe.json and the layer-curve SVGs of a probe run, and the summary printed from them.

probe.json holds the manifest (everything the numbers are a function of), the environment, the
extraction and probe timings, and per pooling: the layers, every per-layer metric as
{value, ci_low, ci_high, n} (permutation nulls as {mean, q95, p, k}), the lexical floor and the
summary. `emobench show RUN_DIR` and the leaderboard's probing page read it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..errors import ConfigError
from ..runstore import atomic_write
from ..types import Metric
from .curves import Guide, Series, line_chart

PROBE_FILE = "probe.json"
FORMAT = "emobench-probe/1"
CHANCE = {"auroc": 0.5, "accuracy": 0.125}


def jsonable(x: Any) -> Any:
    """Metrics as dicts, numpy numbers as Python numbers, NaN and inf as null (standard JSON)."""
    if isinstance(x, Metric):
        return jsonable(x.as_dict())
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def probe_path(run_dir: str | Path) -> Path:
    p = Path(run_dir)
    return p if p.name == PROBE_FILE or p.is_file() else p / PROBE_FILE


def read_report(path: str | Path) -> dict[str, Any]:
    p = probe_path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ConfigError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("pools"), dict):
        raise ConfigError(f"{p}: not an emobench probe file (format {FORMAT})")
    data["_path"] = str(p)
    return data


def _series(label: str, layers: list[int], curve: list[dict[str, Any]]) -> Series:
    return Series(
        label,
        layers,
        [m.get("value") for m in curve],
        [m.get("ci_low") for m in curve],
        [m.get("ci_high") for m in curve],
    )


def charts(pool: dict[str, Any], name: str) -> dict[str, Markup]:
    """The probe curves (reception, categorization, their floors and chance) and the geometry curves."""
    layers, curves, floor = pool["layers"], pool["curves"], pool["lexical_floor"]
    probes = line_chart(
        [
            _series("reception AUROC", layers, curves["reception"]["auroc"]),
            _series("categorization accuracy", layers, curves["categorization"]["accuracy"]),
        ],
        [
            Guide("chance (AUROC)", 0.5),
            Guide("chance (8-way)", 0.125),
            Guide(
                f"bag of words: AUROC {floor['reception_auroc']['value']:.2f}",
                floor["reception_auroc"]["value"],
            ),
            Guide(
                f"bag of words: 8-way {floor['categorization_accuracy']['value']:.2f}",
                floor["categorization_accuracy"]["value"],
            ),
        ],
        title=f"linear probes per layer ({name} pooling), 95% CI",
    )
    geometry = [
        _series(label, layers, curves["geometry"][key])
        for key, label in (
            ("rsa", "RSA with Plutchik wheel"),
            ("direction_cosine", "cos(rich, free) affect direction"),
        )
        if key in curves["geometry"]
    ]
    return {
        "probes": probes,
        "geometry": line_chart(
            geometry,
            [Guide("0", 0.0)],
            domain=(-0.2, 1.0),
            title=f"representational geometry ({name} pooling), 95% CI",
        ),
    }


def write_report(run_dir: Path, report: dict[str, Any]) -> list[Path]:
    """probe.json and one SVG per chart and pooling from a `jsonable` report; returns the paths written."""
    written = [probe_path(run_dir)]
    atomic_write(written[0], json.dumps(report, indent=1, ensure_ascii=False))
    for pool, body in report["pools"].items():
        for chart, svg in charts(body, pool).items():
            path = run_dir / f"{chart}-{pool}.svg"
            atomic_write(path, str(svg))
            written.append(path)
    return written


def _m(m: dict[str, Any] | None, fmt: str = ".3f") -> str:
    if not m or m.get("value") is None:
        return "-"
    lo, hi = m.get("ci_low"), m.get("ci_high")
    ci = f" [{lo:{fmt}}, {hi:{fmt}}]" if lo is not None and hi is not None else ""
    return f"{m['value']:{fmt}}{ci} (n={m.get('n')})"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The summary of every pooling, for the terminal."""
    man = report["manifest"]
    battery = man["battery"]
    lines = [
        f"emobench probe: {man['model']['spec']} on {battery['name']} ({battery['items']} items: "
        + ", ".join(f"{n} {k}" for k, n in sorted(battery["kinds"].items()))
        + ")"
    ]
    for pool, body in report["pools"].items():
        s, layers, curves = body["summary"], body["layers"], body["curves"]
        rec, cat, floor = s["reception"], s["categorization"], s["lexical_floor"]
        at = layers.index(cat["best_layer"])

        def row(label: str, text: str) -> None:
            lines.append(f"    {label:<19}{text}")

        lines.append(f"  pooling {pool}, layers {layers[0]}-{layers[-1]} ({len(layers)})")
        row(
            "affect reception",
            f"best layer {rec['best_layer']}: AUROC {_m(rec['auroc'])}; plateau from layer "
            f"{rec['plateau_layer']}; bag of words {_m(floor['reception_auroc'])}",
        )
        row(
            "categorization",
            f"best layer {cat['best_layer']}: accuracy {_m(cat['accuracy'])}, chance "
            f"{cat['chance']:.3f}; bag of words {_m(floor['categorization_accuracy'])}",
        )
        if "dissociation" in s:
            dis = s["dissociation"]
            row(
                "dissociation",
                f"{dis['reception_normalised']:.3f} - {dis['categorization_normalised']:.3f} "
                f"(chance 0, perfect 1) = {_m(dis['difference'])}",
            )
        row(
            f"at layer {cat['best_layer']}",
            f"categorization selectivity {_m(curves['categorization']['selectivity'][at])}, "
            f"permutation p {curves['categorization']['null'][at].get('p', float('nan')):.3f}; RSA with the wheel "
            f"{_m(curves['geometry']['rsa'][at])}",
        )
        if "keyword" in curves:
            row(
                "keyword gap",
                f"rich - free, free-trained {_m(curves['keyword']['gap_free_trained'][at])}; "
                f"rich-trained {_m(curves['keyword']['gap_rich_trained'][at])}",
            )
        if "transfer" in curves:
            row(
                "transfer set",
                f"reception AUROC {_m(curves['transfer']['reception_auroc'][at])}; accuracy "
                f"{_m(curves['transfer']['categorization_accuracy'][at])}",
            )
    ext = report.get("extraction")
    if ext:
        rate = f", {ext['items_per_s']:.1f} items/s" if ext.get("items_per_s") else ""
        lines.append(
            f"  extraction: {ext['items']} items ({ext['cached']} from the cache) in {ext['seconds']:.1f} s"
            f"{rate} on {ext.get('device', '?')}; probes {report['timing']['probe_seconds']:.1f} s"
        )
    return lines


def layer_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per pooling x analysis x metric x layer (a permutation null gives its p-value, n = K)."""
    rows = []
    for pool, body in report["pools"].items():
        for analysis, metrics in body["curves"].items():
            for name, curve in metrics.items():
                for layer, m in zip(body["layers"], curve, strict=True):
                    if name == "null":
                        m = {"value": m.get("p"), "n": m.get("k")}
                    rows.append(
                        {
                            "pool": pool,
                            "analysis": analysis,
                            "metric": "null_p" if name == "null" else name,
                            "layer": layer,
                            "value": m.get("value"),
                            "ci_low": m.get("ci_low"),
                            "ci_high": m.get("ci_high"),
                            "n": m.get("n"),
                        }
                    )
    return rows
