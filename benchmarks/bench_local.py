"""Local-backend throughput on emobench_ea (English), CPU, SmolLM2-135M-Instruct.

1. hf backend, multiple-choice log-likelihood: shared-prefix scoring (the prompt once, all options in one
   batched pass over its KV cache) vs one full forward pass per option. Target: >= 2x, identical scores.
2. llamacpp backend (embedded GGUF) vs raw llama-cpp-python `create_chat_completion` on the same prompts,
   greedy. Target: emobench >= 0.9x raw items/s.
3. llamacpp log-likelihoods on the default suite (vignettes, no data needed): prompts evaluated in fixed
   chunks (what the backend does) vs the previous reuse of the longest cached prefix (emulated here, for
   the comparison only), in alternating blocks so that both see the same machine load. Also checks that
   the backend's scores are bit-identical when the items are asked in the reverse order on a fresh model.

    python benchmarks/bench_local.py --data-dir DATA_DIR --items 40 [--json out.json]
    python benchmarks/bench_local.py --only llamacpp_ll --items 192
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
    diff = max(
        abs(a - b)
        for x, y in zip(out["shared"], out["per_option"], strict=True)
        for a, b in zip(x, y, strict=True)
    )
    same = sum(
        max(range(len(x)), key=x.__getitem__) == max(range(len(y)), key=y.__getitem__)
        for x, y in zip(out["shared"], out["per_option"], strict=True)
    )
    return {
        "items": len(jobs),
        "options_per_item": len(jobs[0][1]),
        "per_option_items_per_s": len(jobs) / out["per_option_s"],
        "shared_items_per_s": len(jobs) / out["shared_s"],
        "speedup": out["per_option_s"] / out["shared_s"],
        "max_abs_score_diff": diff,
        "same_choice": f"{same}/{len(jobs)}",
    }


def bench_llamacpp(task, samples, max_tokens: int) -> dict:
    from emobench.models import make_backend
    from emobench.types import ChatRequest, GenParams

    backend = make_backend(None)
    raw = backend._llm  # the same loaded weights, called directly: isolates emobench's own overhead
    prompts = [task.render(s) for s in samples]
    params = GenParams(temperature=0.0, max_tokens=max_tokens)

    def run_raw():
        return [
            raw.create_chat_completion(messages=m, temperature=0.0, max_tokens=max_tokens, seed=0)["choices"][
                0
            ]["message"]["content"]
            for m in prompts
        ]

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
    return {
        "items": len(prompts),
        "max_tokens": max_tokens,
        "raw_items_per_s": len(prompts) / raw_s,
        "emobench_items_per_s": len(prompts) / our_s,
        "ratio": raw_s / our_s,
        "same_text": f"{sum(a == b for a, b in zip(raw_texts, our_texts, strict=True))}/{len(prompts)}",
    }


def bench_llamacpp_loglikelihood(n: int, block: int = 24) -> dict:
    from emobench.models import make_backend
    from emobench.registry import make_task

    jobs = []
    for name in ("vignettes", "vignettes_affect"):
        task = make_task(name, {}, None)
        jobs += [
            (task.render(s), [task.continuation(a, s) for a in task.answer_space(s)])
            for s in task.split_samples("test")
        ]
    jobs = jobs[:n]
    backend = make_backend(None)
    llm, real_eval = backend._llm, backend._llm.eval

    def longest_prefix(tokens: list[int]) -> None:  # the reuse this backend had before, for comparison
        cached = [int(t) for t in llm.input_ids[: llm.n_tokens]]
        keep = 0
        while keep < min(len(cached), len(tokens) - 1) and cached[keep] == tokens[keep]:
            keep += 1
        llm.n_tokens = keep
        llm.eval(tokens[keep:])

    primes = {"longest_prefix": longest_prefix, "fixed_chunks": backend._prime}
    spent = dict.fromkeys(primes, 0.0)
    evaluated = dict.fromkeys(primes, 0)

    def counted(mode: str):
        def prime(tokens: list[int]) -> None:
            sizes: list[int] = []
            llm.eval = lambda batch: (sizes.append(len(batch)), real_eval(batch))
            try:
                primes[mode](tokens)
            finally:
                del llm.eval
            evaluated[mode] += sum(sizes)

        return prime

    asyncio.run(backend.loglikelihood(*jobs[0]))  # warm-up
    scores = []
    for begin in range(0, len(jobs), block):  # alternating blocks: both modes see the same machine load
        for mode in primes:
            backend._prime, backend._aligned = counted(mode), 0  # a block never trusts the other's cache
            start = time.perf_counter()
            out = [asyncio.run(backend.loglikelihood(m, c)) for m, c in jobs[begin : begin + block]]
            spent[mode] += time.perf_counter() - start
            scores += out if mode == "fixed_chunks" else []
    fresh = make_backend(None)
    reverse = [asyncio.run(fresh.loglikelihood(m, c)) for m, c in reversed(jobs)][::-1]
    return {
        "items": len(jobs),
        "eval_chunk": backend.eval_chunk,
        "fixed_chunks_items_per_s": len(jobs) / spent["fixed_chunks"],
        "longest_prefix_items_per_s": len(jobs) / spent["longest_prefix"],
        "ratio": spent["longest_prefix"] / spent["fixed_chunks"],
        "prompt_tokens_evaluated": evaluated,
        "bit_identical_in_reverse_order": f"{sum(a == b for a, b in zip(scores, reverse, strict=True))}/{len(jobs)}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("EMOBENCH_DATA_DIR"))
    p.add_argument("--items", type=int, default=40)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--only", choices=["hf", "llamacpp", "llamacpp_ll"], default=None)
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    results: dict = {"cpu_count": os.cpu_count()}
    if args.only in (None, "llamacpp_ll"):
        results["llamacpp_loglikelihood"] = bench_llamacpp_loglikelihood(args.items)
        print("llamacpp log-likelihood:", json.dumps(results["llamacpp_loglikelihood"]))
    if args.only == "llamacpp_ll":
        return _write(results, args.json)
    task, samples = load_items(args.data_dir, args.items)
    if args.only in (None, "hf"):
        results["hf_loglikelihood"] = bench_hf_loglikelihood(task, samples)
        print("hf log-likelihood:", json.dumps(results["hf_loglikelihood"]))
    if args.only in (None, "llamacpp"):
        results["llamacpp_generate"] = bench_llamacpp(task, samples, args.max_tokens)
        print("llamacpp generate:", json.dumps(results["llamacpp_generate"]))
    _write(results, args.json)


def _write(results: dict, path: str | None) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
