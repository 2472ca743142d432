"""Local-backend throughput on emobench_ea (English), CPU, SmolLM2-135M-Instruct.

1. hf backend, multiple-choice log-likelihood: shared-prefix scoring (the prompt once, all options in one
   batched pass over its KV cache) vs one full forward pass per option. Target: >= 2x, identical scores.
2. llamacpp backend (embedded GGUF) vs raw llama-cpp-python `create_chat_completion` on the same prompts,
   greedy. Target: emobench >= 0.9x raw items/s.

    python benchmarks/bench_local.py --data-dir ../shared/datasets --items 40 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time


def load_items(data_dir: str | None, n: int):
    from emobench.registry import make_task

    task = make_task("emobench_ea", {"lang": "en"}, data_dir)
    samples = []
    for sample in task.load_samples("test"):
        samples.append(sample)
        if len(samples) >= n:
            break
    return task, samples


def bench_hf_loglikelihood(task, samples) -> dict:
    from emobench.models import make_backend

    backend = make_backend("hf/smollm2", {"device": "cpu"})
    jobs = [(task.render(s), [task.continuation(a, s) for a in task.answer_space(s)]) for s in samples]
    backend.score_options(*jobs[0])  # warm-up
    out: dict = {}
    for mode in ("per_option", "shared"):
        backend.ll_mode = mode
        start = time.perf_counter()
        out[mode] = [backend.score_options(msgs, conts) for msgs, conts in jobs]
        out[mode + "_s"] = time.perf_counter() - start
    diff = max(abs(a - b) for x, y in zip(out["shared"], out["per_option"], strict=True) for a, b in zip(x, y, strict=True))
    same = sum(max(range(len(x)), key=x.__getitem__) == max(range(len(y)), key=y.__getitem__)
               for x, y in zip(out["shared"], out["per_option"], strict=True))
    return {"items": len(jobs), "options_per_item": len(jobs[0][1]),
            "per_option_items_per_s": len(jobs) / out["per_option_s"], "shared_items_per_s": len(jobs) / out["shared_s"],
            "speedup": out["per_option_s"] / out["shared_s"], "max_abs_score_diff": diff,
            "same_choice": f"{same}/{len(jobs)}"}


def bench_llamacpp(task, samples, max_tokens: int) -> dict:
    from emobench.models import make_backend
    from emobench.types import ChatRequest, GenParams

    backend = make_backend(None)
    raw = backend._llm  # the same loaded weights, called directly: isolates emobench's own overhead
    prompts = [task.render(s) for s in samples]
    params = GenParams(temperature=0.0, max_tokens=max_tokens)

    def run_raw():
        return [raw.create_chat_completion(messages=m, temperature=0.0, max_tokens=max_tokens, seed=0)
                ["choices"][0]["message"]["content"] for m in prompts]

    async def run_emobench():
        replies = await asyncio.gather(*(backend.generate([ChatRequest(tuple(m), params)]) for m in prompts))
        return [r[0].text for r in replies]

    # raw calls run on the backend's own worker thread, as emobench's do: llama.cpp's OpenMP team is per
    # calling thread, so both sides use the same team and only emobench's own overhead differs
    on_worker = backend._worker.submit
    on_worker(run_raw).result()  # warm-up (page cache, thread pool)
    t0 = time.perf_counter()
    raw_texts = on_worker(run_raw).result()
    raw_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    our_texts = asyncio.run(run_emobench())
    our_s = time.perf_counter() - t0
    return {"items": len(prompts), "max_tokens": max_tokens, "raw_items_per_s": len(prompts) / raw_s,
            "emobench_items_per_s": len(prompts) / our_s, "ratio": raw_s / our_s,
            "same_text": f"{sum(a == b for a, b in zip(raw_texts, our_texts, strict=True))}/{len(prompts)}"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("EMOBENCH_DATA_DIR"))
    p.add_argument("--items", type=int, default=40)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--only", choices=["hf", "llamacpp"], default=None)
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    task, samples = load_items(args.data_dir, args.items)
    results = {"cpu_count": os.cpu_count()}
    if args.only in (None, "hf"):
        results["hf_loglikelihood"] = bench_hf_loglikelihood(task, samples)
        print("hf log-likelihood:", json.dumps(results["hf_loglikelihood"]))
    if args.only in (None, "llamacpp"):
        results["llamacpp_generate"] = bench_llamacpp(task, samples, args.max_tokens)
        print("llamacpp generate:", json.dumps(results["llamacpp_generate"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
