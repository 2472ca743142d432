"""Call and token overhead of each variant per sample, against the loopback server.

Runs `direct,cot,rag,coem,refine,fewshot` on the given tasks (default: the LongEmotion QA and EmoBench
EA test fixtures shipped in tests/fixtures) and prints, per (task, variant): model calls, prompt and
completion tokens per sample, and the multiple of `direct`'s. The loopback server counts prompt tokens
as characters/4, so token figures are estimates of prompt size, not any real model's tokenizer.

    python benchmarks/bench_variants.py
    python benchmarks/bench_variants.py --tasks longemotion_qa --data-dir /path/to/originals --limit 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from emobench.manifest import RunConfig
from emobench.runner import run
from emobench.testing.server import LoopbackServer, ServerConfig

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ["direct", "cot", "rag", "coem", "refine", "fewshot"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="longemotion_qa,emobench_ea")
    ap.add_argument("--data-dir", default=None, help="default: a folder linking the test fixtures")
    ap.add_argument("--limit", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer(ServerConfig()) as server:
        data = args.data_dir
        if data is None:
            data = Path(tmp) / "data"
            data.mkdir()
            for sub in ("longemotion", "emobench"):
                (data / sub).symlink_to(ROOT / "tests" / "fixtures" / sub)
        config = RunConfig(
            model="openai/loopback",
            base_url=server.base_url,
            tasks=args.tasks,
            variants=VARIANTS,
            variant_args={"artifact_dir": str(Path(tmp) / "refined")},
            limit=args.limit,
            data_dir=str(data),
            output=str(Path(tmp) / "run"),
            use_cache=False,
        )
        _, results = asyncio.run(run(config))
    base: dict[str, dict] = {}
    for e in results["results"]:
        n = max(1, e["n_samples"])
        u = e["usage"]
        row = {
            "task": e["task"],
            "variant": e["variant"],
            "n": e["n_samples"],
            "calls_per_sample": round(u["calls_per_sample"] or 0, 2),
            "prompt_tokens_per_sample": round(u["prompt_tokens"] / n),
            "completion_tokens_per_sample": round(u["completion_tokens"] / n),
        }
        if e["variant"] == "direct":
            base[e["task"]] = row
        b = base.get(e["task"])
        if b and e["variant"] != "direct":
            row["calls_x"] = round(row["calls_per_sample"] / max(b["calls_per_sample"], 1e-9), 2)
            row["prompt_tokens_x"] = round(
                row["prompt_tokens_per_sample"] / max(b["prompt_tokens_per_sample"], 1), 2
            )
        print(json.dumps(row))


if __name__ == "__main__":
    main()
