"""Representation probing speed: the shipped 144-item battery on SmolLM2-135M-Instruct (the embedded
GGUF, de-quantised by transformers).

Targets on 2 CPU cores: hidden-state extraction <= 30 s, all probes of all 31 layers (one pooling)
<= 15 s. Also reported: model load time, items per second (and on a GPU, bf16, when one is present),
how many logistic regressions the probes fit, and what fitting them one by one with scikit-learn
would take (timed on a sample of the same problem sizes, extrapolated).

    python benchmarks/bench_probe.py             # extraction + probes
    python benchmarks/bench_probe.py --quick     # probes only, on synthetic states of 4 layers

Writes benchmarks/results/probe.json and probe.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine_info, write_report

from emobench.battery import load_battery
from emobench.probe import logreg, probes
from emobench.probe.extract import batch_size_for, extract, load_model

EXTRACT_TARGET_S, PROBE_TARGET_S = 30.0, 15.0


def timed(fn, *args, **kwargs) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def bench_extraction(texts: list[str], device: str, batch_size: int | None) -> dict[str, Any]:
    backend, load_s, _ = timed(load_model, None, {"device": device})
    states, wall, cpu = timed(extract, backend, texts, Path(tempfile.mkdtemp()), batch_size=batch_size)
    longest = max(len(backend.tokenizer(t)["input_ids"]) for t in texts)
    return {
        "device": device,
        "dtype": states.environment.get("dtype"),
        "batch_size": batch_size or batch_size_for(backend, longest),
        "load_s": round(load_s, 1),
        "extract_s": round(wall, 1),
        "extract_cpu_s": round(cpu, 1),
        "items_per_s": round(len(texts) / wall, 2),
        "layers": states.layers,
        "states": states,
    }


def count_fits() -> tuple[dict[int, list[tuple[int, int]]], Any]:
    """Wrap logreg.fit to record every problem it solves: n_classes -> [(rows, columns)]."""
    seen: dict[int, list[tuple[int, int]]] = {}
    original = logreg.fit

    def counting(p: logreg.Problems, *args, **kwargs):
        rows = (p.w > 0).sum(axis=-1)
        seen.setdefault(p.n_classes, []).extend((int(r), p.X.shape[2]) for r in rows.ravel())
        return original(p, *args, **kwargs)

    logreg.fit = counting
    return seen, original


def sklearn_estimate(seen: dict[int, list[tuple[int, int]]], sample: int = 40) -> dict[str, Any]:
    """Seconds scikit-learn's LogisticRegression would take for the same problems, one fit at a time
    (scikit-learn must be imported before the BLAS thread limit is set, or the limit misses the BLAS
    scipy loads: 85 ms a fit instead of 3)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    total, measured = 0.0, {}
    for k, sizes in seen.items():
        rows, cols = np.median([s[0] for s in sizes]), np.median([s[1] for s in sizes])
        n, d = int(rows), int(cols)
        X = rng.normal(size=(n, d)) + rng.normal(size=(k, d))[np.arange(n) % k]
        y = np.arange(n) % k
        start = time.perf_counter()
        for i in range(sample):
            LogisticRegression(C=10.0 ** (i % 4 - 3)).fit(X, y)
        per_fit = (time.perf_counter() - start) / sample
        measured[f"{k}_classes"] = {
            "fits": len(sizes),
            "median_rows": n,
            "ms_per_fit": round(1000 * per_fit, 2),
        }
        total += per_fit * len(sizes)
    return {"per_kind": measured, "estimated_s": round(total, 1)}


def bench_probes(X: np.ndarray, d: probes.Design, settings: probes.Settings) -> dict[str, Any]:
    import sklearn.linear_model  # noqa: F401 - loads scipy's BLAS before the limit below
    from threadpoolctl import threadpool_limits

    seen, original = count_fits()
    try:
        with threadpool_limits(1, user_api="blas"):  # as `emobench probe` runs them, and so is the estimate
            analysis, wall, cpu = timed(probes.analyse, X, d, settings)
            estimate = sklearn_estimate(seen)
    finally:
        logreg.fit = original
    curves = analysis.curves
    return {
        "layers": X.shape[0],
        "probe_s": round(wall, 1),
        "probe_cpu_s": round(cpu, 1),
        "fits": {k: len(v) for k, v in seen.items()},
        "sklearn_one_by_one": estimate,
        "reception_auroc": [round(m.value, 3) for m in curves["reception"]["auroc"]],
        "categorization_accuracy": [round(m.value, 3) for m in curves["categorization"]["accuracy"]],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="probes only, synthetic states of 4 layers")
    ap.add_argument(
        "--batch-size", type=int, default=None, help="items per forward pass (default: backend's)"
    )
    args = ap.parse_args(argv)
    battery = load_battery("vignettes")
    settings = probes.Settings()
    d = probes.Design.of(list(battery.items), [], settings.cv.folds, settings.cv.seed)
    data: dict[str, Any] = {"machine": machine_info(), "items": len(battery.items)}
    if args.quick:
        X = np.random.default_rng(0).normal(size=(4, len(battery.items), 576))
    else:
        import torch

        runs = [bench_extraction([it.text for it in battery.items], "cpu", args.batch_size)]
        if torch.cuda.is_available():
            runs.append(bench_extraction([it.text for it in battery.items], "cuda", args.batch_size))
        X = np.ascontiguousarray(runs[0]["states"].states["mean"].transpose(1, 0, 2), dtype=float)
        data["extraction"] = [{k: v for k, v in r.items() if k != "states"} for r in runs]
        data["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    data["probes"] = bench_probes(X, d, settings)
    ext = data.get("extraction", [{}])[0]
    ok = data["probes"]["probe_s"] <= PROBE_TARGET_S and (args.quick or ext["extract_s"] <= EXTRACT_TARGET_S)
    data["targets_met"] = ok
    lines = [
        "# Representation probing (shipped battery, SmolLM2-135M)",
        "",
        f"load average at start {data['machine']['loadavg_at_start']}, {data['machine']['cpus']} CPUs",
        "",
        "| step | wall s | CPU s | target | notes |",
        "|---|---|---|---|---|",
    ]
    for r in data.get("extraction", []):
        lines.append(
            f"| extraction ({r['device']}, {r['dtype']}, batch {r['batch_size']}) | {r['extract_s']} | "
            f"{r['extract_cpu_s']} | <= {EXTRACT_TARGET_S:g} | {r['items_per_s']} items/s; model load "
            f"{r['load_s']} s |"
        )
    p = data["probes"]
    lines.append(
        f"| probes, {p['layers']} layers | {p['probe_s']} | {p['probe_cpu_s']} | <= {PROBE_TARGET_S:g} | "
        f"{sum(p['fits'].values())} fits; scikit-learn one by one: ~{p['sklearn_one_by_one']['estimated_s']} s |"
    )
    markdown = "\n".join(lines) + "\n"
    write_report("probe", data, markdown)
    print(markdown)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
