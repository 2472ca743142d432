"""`emobench doctor --model SPEC`: is this backend set up the way I think? Prints what the backend
reports (device, dtype, chat template, context window) and its answers to three canned prompts, so a
wrong template or a CPU fallback shows up before a long run rather than in its results."""

from __future__ import annotations

import argparse
import asyncio
import time

from .common import add_model_arguments, key_values

CANNED = [
    "Reply with exactly one word: the emotion most people feel when they receive a surprise gift.",
    "Lena's best friend forgot her birthday. In one short sentence, how might Lena feel?",
    'Reply only with JSON of the form {"answer": "<letter>"}. Which is an emotion? A) table B) joy C) seven',
]
CHOICE_PROMPT = "Which word names an emotion? A) table B) joy C) seven. Answer with the letter."


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_doctor(args))


async def _doctor(args: argparse.Namespace) -> int:
    from ..models import make_backend
    from ..types import ChatRequest, GenParams

    start = time.perf_counter()
    backend = make_backend(
        args.model,
        key_values(args.model_arg, "--model-arg"),
        base_url=args.base_url,
        timeout=args.timeout,
        concurrency=args.concurrency,
    )
    try:
        info = backend.info()
        print(
            f"backend            {backend.kind} ({args.model or 'smollm2'}), loaded in {time.perf_counter() - start:.1f}s"
        )
        for key in (
            "model",
            "revision",
            "device",
            "dtype",
            "batch_size",
            "context_window",
            "loglikelihood",
            "chat_template_hash",
        ):
            if info.get(key) is not None:
                print(f"{key:<19}{info[key]}")
        template = info.get("chat_template") or backend.chat_template
        if template:
            first = str(template).strip().splitlines()[0]
            print(f"chat template      {first[:100]}{' ...' if len(str(template)) > len(first) else ''}")
        else:
            print("chat template  (none reported: the server or library applies its own)")
        system = [{"role": "system", "content": args.system_prompt}] if args.system_prompt else []
        params = GenParams(
            temperature=0.0 if args.temperature is None else args.temperature,
            max_tokens=args.max_tokens or 48,
        )
        requests = [ChatRequest((*system, {"role": "user", "content": q}), params) for q in CANNED]
        t0 = time.perf_counter()
        replies = await asyncio.gather(*(backend.generate([r]) for r in requests))
        for i, (q, [reply]) in enumerate(zip(CANNED, replies, strict=True), 1):
            print(f"\nprompt {i}: {q}\nreply    {reply.text.strip()!r}")
        print(f"\n3 prompts in {time.perf_counter() - t0:.1f}s")
        if backend.supports_loglikelihood:
            lls = await backend.loglikelihood(
                [*system, {"role": "user", "content": CHOICE_PROMPT}], [" A", " B", " C"]
            )
            best = "ABC"[max(range(3), key=lls.__getitem__)]
            print(
                f"log-likelihood of A/B/C: {', '.join(f'{x:.2f}' for x in lls)} -> {best} (B is the emotion)"
            )
    finally:
        await backend.close()
    return 0
