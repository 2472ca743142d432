"""The floor under any harness: the benchmark workload sent by a bare asyncio loop, with no harness around it.

    python benchmarks/floor_client.py openai-sdk ITEMS_JSONL BASE_URL CONCURRENCY
    python benchmarks/floor_client.py aiohttp    ITEMS_JSONL BASE_URL CONCURRENCY

`openai-sdk` makes exactly the call emobench's `openai/` backend makes (the official SDK on its aiohttp
transport, `post(..., cast_to=str)`), so emobench's distance to this row is the harness's own cost.
`aiohttp` skips the SDK: its distance to the `openai-sdk` row is what the SDK costs. Each item is asked
once, the reply parsed as JSON and dropped: no prompt templates, cache, retries, scoring or run log.
"""

from __future__ import annotations

import asyncio
import json
import sys

from emobench.testing.workload import PROMPT_TAIL


def prompts(items_path: str) -> list[str]:
    with open(items_path, encoding="utf-8") as fh:
        return [f"{json.loads(line)['text']}\n{PROMPT_TAIL}" for line in fh if line.strip()]


async def run(mode: str, texts: list[str], base_url: str, concurrency: int) -> None:
    bodies = iter(
        {"model": "bench", "messages": [{"role": "user", "content": t}], "max_tokens": 16, "temperature": 0.0}
        for t in texts
    )
    if mode == "openai-sdk":
        import openai

        limits = type(openai.DEFAULT_CONNECTION_LIMITS)(
            max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8
        )
        client = openai.AsyncOpenAI(
            api_key="sk-floor",
            base_url=base_url,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(timeout=120, limits=limits),
        )

        async def call(body: dict) -> str:
            return await client.post("/chat/completions", body=body, cast_to=str)

        close = client.close
    else:
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 8))
        url = base_url.rstrip("/") + "/chat/completions"

        async def call(body: dict) -> str:
            async with session.post(url, json=body) as resp:
                resp.raise_for_status()
                return await resp.text()

        close = session.close

    async def worker() -> None:
        for body in bodies:
            json.loads(await call(body))

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await close()


def main(argv: list[str]) -> int:
    mode, items_path, base_url, concurrency = argv
    if mode not in ("openai-sdk", "aiohttp"):
        raise SystemExit(f"unknown mode {mode!r}: openai-sdk or aiohttp")
    asyncio.run(run(mode, prompts(items_path), base_url, int(concurrency)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
