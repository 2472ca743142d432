"""`emobench probe` end to end: battery -> hidden states (cached) -> probes per layer -> probe.json.

The run directory is named by what the hidden states depend on (model, battery, input format), so a
re-run with other probe settings (layers, pooling, folds, permutations, seed) lands in the same
directory, reads the states from its cache and rewrites probe.json; `--output` chooses another.
The manifest lists everything the numbers are a function of.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .. import __version__
from ..battery import Battery, load_battery
from ..errors import ConfigError
from ..models.base import public_args
from ..types import stable_hash
from . import cv, probes
from .extract import POOLS, HiddenStates, states_for
from .report import FORMAT, jsonable, write_report
from .summary import summarise

HIDDEN_DIR = "hidden"


@dataclass
class ProbeConfig:
    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    battery: str = "vignettes"
    data_dir: str | None = None
    layers: str = "all"
    pools: tuple[str, ...] = ("mean",)
    chat_template: bool = False
    folds: int = 5
    permutations: int = 20
    seed: int = 1234
    batch_size: int | None = None
    output: str | None = None
    runs_root: str = "runs"

    @property
    def spec(self) -> str:
        return self.model or "hf/smollm2"

    def settings(self) -> probes.Settings:
        return probes.Settings(cv.Settings(folds=self.folds, seed=self.seed), self.permutations)


def battery_fingerprint(battery: Battery) -> str:
    return stable_hash(
        [[it.id, it.pair_id, it.kind, it.emotion, it.text] for it in (*battery.items, *battery.transfer)]
    )[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[-40:] or "x"


def run_dir_for(config: ProbeConfig, battery: Battery) -> Path:
    if config.output:
        return Path(config.output)
    key = stable_hash(
        [config.spec, public_args(config.model_args), battery_fingerprint(battery), config.chat_template]
    )[:8]
    name = Path(battery.name).stem if battery.name not in ("vignettes", "aipsy_affect") else battery.name
    return Path(config.runs_root) / f"probe_{_slug(config.spec.split('/')[-1])}_{_slug(name)}_{key}"


def parse_layers(value: str, available: int) -> list[int]:
    """`all`, or comma-separated layer numbers and ranges (`0,8,16-20`; negative counts from the end)."""
    if value.strip() == "all":
        return list(range(available))
    chosen: list[int] = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        try:
            if re.fullmatch(r"\d+-\d+", part):
                lo, hi = map(int, part.split("-"))
                chosen += list(range(lo, hi + 1))
            else:
                chosen.append(int(part) % available if int(part) < 0 else int(part))
        except ValueError:
            raise ConfigError(
                f"--layers {value!r}: use all, or layer numbers and ranges like 0,8,16-20"
            ) from None
    bad = [x for x in chosen if not 0 <= x < available]
    if bad or not chosen:
        raise ConfigError(f"--layers {value!r}: the model has layers 0-{available - 1} (0 = embeddings)")
    return sorted(set(chosen))


def check_battery(battery: Battery, folds: int) -> None:
    """Enough stories for grouped folds: every outer training fold must hold affect and neutral items."""
    kinds = Counter(it.kind for it in battery.items)
    pairs = {it.pair_id for it in battery.items if it.kind == "affect"}
    if kinds["affect"] < 2 * folds or kinds["neutral"] < 2 * folds or len(pairs) < 2 * folds:
        raise ConfigError(
            f"battery {battery.source}: {kinds['affect']} affect and {kinds['neutral']} neutral "
            f"items in {len(pairs)} pairs; probing with {folds} folds needs at least {2 * folds} "
            "of each (or fewer --folds)"
        )


def manifest(
    config: ProbeConfig, battery: Battery, states: HiddenStates, layers: list[int]
) -> dict[str, Any]:
    s = config.settings()
    return {
        "harness_version": __version__,
        "model": {"spec": config.spec, **states.model},
        "battery": {
            "name": battery.name,
            "source": battery.source,
            "fingerprint": battery_fingerprint(battery),
            "items": len(battery.items),
            "transfer_items": len(battery.transfer),
            "kinds": dict(Counter(it.kind for it in battery.items)),
        },
        "input": {
            "chat_template": config.chat_template,
            "pools": list(config.pools),
            "layers": layers,
            "hidden_layers": states.layers,
        },
        "probe": {
            "model": "L2 logistic regression on standardised states (scikit-learn's objective), "
            "class-balanced",
            "folds": s.cv.folds,
            "inner_folds": s.cv.inner_folds,
            "C_grid": list(s.cv.Cs),
            "grouped_by": "pair_id",
            "permutations": s.permutations,
            "control_task": "random label per content word type, item label = majority",
            "seed": s.cv.seed,
        },
    }


def _analyse_pools(
    states: HiddenStates,
    layers: list[int],
    design: probes.Design,
    settings: probes.Settings,
    pools: tuple[str, ...],
) -> dict[str, Any]:
    out = {}
    # one BLAS thread: the probes multiply thousands of small matrices, and a second thread per product
    # costs more than it brings (26 s instead of 9 s for the shipped battery on 2 cores)
    with threadpool_limits(1, user_api="blas"):
        for pool in pools:
            X = np.ascontiguousarray(states.states[pool][:, layers].transpose(1, 0, 2), dtype=float)
            analysis = probes.analyse(X, design, settings)
            out[pool] = {
                "layers": layers,
                "curves": analysis.curves,
                "lexical_floor": analysis.lexical_floor,
                "summary": summarise(analysis, design, layers),
            }
    return out


def run_probe(
    config: ProbeConfig, progress: Callable[[int, int], None] | None = None
) -> tuple[Path, dict[str, Any]]:
    """Run the probes; returns the run directory and the report written to its probe.json."""
    unknown = [p for p in config.pools if p not in POOLS]
    if unknown or not config.pools:
        raise ConfigError(f"--pool {','.join(config.pools)}: choose from {', '.join(POOLS)}")
    battery = load_battery(config.battery, config.data_dir)
    check_battery(battery, config.folds)
    run_dir = run_dir_for(config, battery)
    everything = [*battery.items, *battery.transfer]
    states = states_for(
        config.spec,
        config.model_args,
        [it.text for it in everything],
        run_dir / HIDDEN_DIR,
        config.chat_template,
        config.batch_size,
        progress,
    )
    layers = parse_layers(config.layers, states.layers)
    settings = config.settings()
    design = probes.Design.of(
        list(battery.items), list(battery.transfer), settings.cv.folds, settings.cv.seed
    )
    start = time.perf_counter()
    pools = _analyse_pools(states, layers, design, settings, config.pools)
    man = manifest(config, battery, states, layers)
    report = jsonable(
        {
            "format": FORMAT,
            "manifest": man,
            "environment": states.environment,
            # the file's location is not part of what the numbers depend on
            "manifest_hash": stable_hash({**man, "battery": {**man["battery"], "source": None}})[:16],
            "extraction": {
                "items": len(everything),
                "extracted": states.extracted,
                "cached": states.cached,
                "seconds": round(states.seconds, 2),
                "device": states.environment.get("device"),
                "items_per_s": round(states.extracted / states.seconds, 2) if states.seconds else None,
            },
            "timing": {"probe_seconds": round(time.perf_counter() - start, 2)},
            "run": {"finished": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "pools": pools,
        }
    )
    write_report(run_dir, report)
    return run_dir, report
