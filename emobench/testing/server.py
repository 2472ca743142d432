"""A loopback OpenAI-compatible chat-completions server with latency, jitter and fault injection.

It is the test server of the suite and the model of the benchmarks. It counts every request, records
a hash of each request's messages (so tests can prove that no finished sample was asked twice) and the
peak number of requests it served at once.

    python -m emobench.testing.server --port 8731 --latency 0.2 --fault-rate 0.2

Answers are deterministic: by default the reply to a multiple-choice prompt is a JSON answer whose
letter is derived from a hash of the prompt (and, for a sampled request -- temperature > 0 with a
`seed` -- of the seed too, so one seed always gives the same draw and another seed another draw);
`answers` maps a substring of the prompt to a fixed reply (scripted tests), and `answer_fn` may compute
one. The last `BODIES_KEPT` request bodies are kept (`state.bodies`) for tests that check what was sent.

It also plays a judge (emobench/judge.py): a prompt whose last message holds `<score LOW-HIGH>` slots
(the reply format every judge template asks for) gets that skeleton back with each slot filled by a
number derived from a hash of the prompt, the requested model name and the slot's position
(`judge_score`), so two judge names on one server disagree deterministically; `judge_fn(model,
messages)` may answer instead (a planted rule; None falls back to the hash). Rating lines such as
`Interested: <rating 1-5>` (LongEmotion EE's questionnaire) get a rating in range.

A request with `logprobs: true` gets OpenAI's `choices[0].logprobs.content` back (`top_logprobs`
alternatives per token, at most the number asked): the reply cut into word and punctuation tokens, and
at each one-capital-letter token a deterministic distribution over the prompt's option letters whose
most probable letter is the one replied (`letter_logprobs` maps a prompt substring to a fixed one).
`logprobs=False` makes it a server that ignores the parameter, `refuse_logprobs` one that answers 400.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FAULTS = ("429", "500", "503", "reset", "hang", "truncated", "empty_choices")
BODIES_KEPT = 256  # bounded: the benchmarks send tens of thousands of requests


@dataclass
class ServerConfig:
    latency: float = 0.0
    jitter: float = 0.0
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULTS
    retry_after: float = 0.05
    hang_seconds: float = 30.0
    seed: int = 0
    answers: dict[str, str] = field(default_factory=dict)
    answer_fn: Callable[[list[dict[str, str]]], str] | None = None
    judge_fn: Callable[[str, list[dict[str, str]]], str | None] | None = None  # (model, messages) -> verdict
    model_name: str = "loopback"
    logprobs: bool = True  # return log-probabilities when a request asks for them
    refuse_logprobs: bool = False  # answer 400 to a request that asks for them
    letter_logprobs: dict[str, dict[str, float]] = field(default_factory=dict)  # prompt substring -> top


class State:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.lock = threading.Lock()
        self.rng = random.Random(config.seed)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.completed = 0
            self.in_flight = 0
            self.peak_in_flight = 0
            self.faults: Counter[str] = Counter()
            self.prompt_hashes: Counter[str] = Counter()
            self.auth_headers: list[str] = []
            self.bodies: deque[dict[str, Any]] = deque(maxlen=BODIES_KEPT)
            self.first_request_at: float | None = None  # wall clock, for the benchmarks' request phase
            self.last_response_at: float | None = None

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "completed": self.completed,
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                "faults": dict(self.faults),
                "prompt_hashes": dict(self.prompt_hashes),
                "first_request_at": self.first_request_at,
                "last_response_at": self.last_response_at,
                "request_phase_s": (self.last_response_at - self.first_request_at)
                if self.first_request_at is not None and self.last_response_at is not None
                else None,
            }


def prompt_hash(messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def sampling_salt(body: dict[str, Any]) -> str:
    """What a sampled request's answer depends on besides its prompt: its seed (empty when greedy)."""
    temperature, seed = body.get("temperature"), body.get("seed")
    sampled = isinstance(temperature, (int, float)) and temperature > 0
    return f"seed={seed}" if sampled and seed is not None else ""


def default_answer(messages: list[dict[str, str]], salt: str = "") -> str:
    """A deterministic reply the harness parsers understand; `salt` picks another draw."""
    text = messages[-1]["content"] if messages else ""
    letters = re.findall(r"^\s*([A-Z])[\)\.]\s", text, re.MULTILINE)
    digest = int(hashlib.sha256((text + salt).encode()).hexdigest(), 16)
    if letters:
        answer: dict[str, Any] = {"answer": letters[digest % len(letters)]}
        if '"confidence"' in text:  # the `confidence` variant asks for a stated confidence
            answer["confidence"] = 40 + (digest >> 16) % 61
        return json.dumps(answer)
    scored = re.findall(r"^(\w+): <score>\s*$", text, re.MULTILINE)  # EQ-Bench style rating lines
    if scored:
        return "\n".join(f"{name}: {(digest >> (4 * i)) % 11}" for i, name in enumerate(scored))
    rated = re.findall(r"^(\w+): <rating (\d+)-(\d+)>", text, re.MULTILINE)  # questionnaire lines
    if rated:
        return "\n".join(
            f"{name}: {int(lo) + (digest >> (3 * i)) % (int(hi) - int(lo) + 1)} - as I imagine it"
            for i, (name, lo, hi) in enumerate(rated)
        )
    if "index" in text.lower():
        return json.dumps({"index": digest % 30})
    return "A reply from the loopback server."


SCORE_SLOT = re.compile(r"<score (-?\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)>")


def is_judge_prompt(messages: list[dict[str, str]]) -> bool:
    """A judge's prompt: its last message asks for a JSON skeleton with `<score LOW-HIGH>` slots."""
    return bool(messages) and SCORE_SLOT.search(messages[-1].get("content", "")) is not None


def judge_score(messages: list[dict[str, str]], model: str, slot: int, low: float, high: float) -> int:
    """The loopback judge's score for one slot: a whole number in [low, high] from a hash of the prompt,
    the judge's model name and the slot's position."""
    key = json.dumps([messages, model, slot], sort_keys=True)
    digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
    return int(low) + digest % (int(high) - int(low) + 1)


def default_judge(messages: list[dict[str, str]], model: str) -> str:
    """The judge skeleton of the last message (its ```json block) with every slot filled (`judge_score`)."""
    text = messages[-1]["content"]
    block = re.search(r"```json\s*(.*?)```", text, re.DOTALL)
    skeleton = block.group(1) if block else text[text.index("<score") :]
    counter = iter(range(10_000))
    return SCORE_SLOT.sub(
        lambda m: str(judge_score(messages, model, next(counter), float(m.group(1)), float(m.group(2)))),
        skeleton,
    ).strip()


_TOKENS = re.compile(r"\s*\w+|\s*[^\w\s]")


def _prompt(messages: list[dict[str, str]]) -> str:
    return "\n".join(m.get("content", "") for m in messages)


def token_logprobs(
    text: str, messages: list[dict[str, str]], k: int, scripted: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """OpenAI's `logprobs.content` for `text`: word and punctuation tokens (spaces kept in front), each
    with its UTF-8 bytes, its log-probability and up to `k` most probable alternatives. A token that is
    one capital letter gets `scripted` (token -> log-probability) or a distribution over the option
    letters of the last message: the replied letter 0.5-0.95 (from a hash of the prompt), 15% of it as
    the same letter with a space in front, the rest spread over the other letters and a quote mark. Any
    other token is certain and lists only itself (kept short: the server answers benchmark loads)."""
    out = []
    for token in _TOKENS.findall(text):
        if len(token) == 1 and "A" <= token <= "Z":
            top = scripted if scripted is not None else _letter_distribution(token, messages)
            ranked = sorted(top.items(), key=lambda kv: -kv[1])[: max(0, k)]
            alternatives = [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in ranked]
            logprob = top.get(token, ranked[0][1] if ranked else 0.0)
        else:
            logprob = 0.0
            alternatives = [{"token": token, "logprob": 0.0, "bytes": list(token.encode())}][: max(0, k)]
        out.append(
            {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": alternatives}
        )
    return out


def _letter_distribution(letter: str, messages: list[dict[str, str]]) -> dict[str, float]:
    last = messages[-1]["content"] if messages else ""
    options = re.findall(r"^\s*([A-Z])[\)\.]\s", last, re.MULTILINE)
    digest = int(hashlib.sha256(last.encode()).hexdigest(), 16)
    chosen = 0.5 + 0.45 * ((digest >> 8) % 1000) / 1000
    others = [o for o in options if o != letter]
    weights = [1 + (digest >> (4 * i)) % 5 for i in range(len(others))]
    rest = 1 - chosen
    probs = {letter: 0.85 * chosen, f" {letter}": 0.15 * chosen, '"': rest * (0.1 if others else 1.0)}
    for other, w in zip(others, weights, strict=True):
        probs[other] = 0.9 * rest * w / sum(weights)
    return {t: math.log(p) for t, p in probs.items()}


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _Connection:
    """One keep-alive HTTP/1.1 connection, served by asyncio.

    Why asyncio and not http.server: a thread per connection makes every burst of replies queue on the
    GIL (about 0.2 ms each), which at 64 connections adds ~10 ms per round of requests and would be
    measured as harness overhead. Here a reply is one write from one event loop, and the configured
    latency is an `asyncio.sleep`.
    """

    def __init__(self, state: State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.state, self.reader, self.writer = state, reader, writer

    async def serve(self) -> None:
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await self.reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path = request_line.split(" ")[:2]
                headers = {}
                for line in lines:
                    key, sep, value = line.partition(":")
                    if sep:
                        headers[key.strip().lower()] = value.strip()
                body = await self._body(headers)
                keep = await self.dispatch(method, path, headers, body)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                self.writer.close()

    async def _body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    return b"".join(chunks)
                chunks.append(data[:-2])
        length = int(headers.get("content-length") or 0)
        return await self.reader.readexactly(length) if length else b""

    async def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()

    async def dispatch(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> bool:
        """Answer one request; False when the connection must be dropped."""
        path = path.split("?")[0].rstrip("/")
        if method == "GET":
            if path.endswith("/stats"):
                await self.send(200, json.dumps(self.state.snapshot()).encode())
            elif path.endswith("/models"):
                await self.send(
                    200,
                    json.dumps(
                        {"object": "list", "data": [{"id": self.state.config.model_name, "object": "model"}]}
                    ).encode(),
                )
            else:
                await self.send(404, b'{"error": "not found"}')
            return True
        if path.endswith("/reset"):
            self.state.reset()
            await self.send(200, b"{}")
            return True
        st, cfg = self.state, self.state.config
        try:
            body = json.loads(raw)
            messages = body.get("messages") or []
        except (ValueError, AttributeError):
            await self.send(400, b'{"error": {"message": "invalid JSON"}}')
            return True
        with st.lock:
            st.requests += 1
            if st.first_request_at is None:
                st.first_request_at = time.time()
            st.in_flight += 1
            st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
            st.prompt_hashes[prompt_hash(messages)] += 1
            st.auth_headers.append(headers.get("authorization", ""))
            st.bodies.append(body)
            fault = st.rng.choice(cfg.faults) if cfg.faults and st.rng.random() < cfg.fault_rate else None
            delay = cfg.latency + (st.rng.uniform(-cfg.jitter, cfg.jitter) if cfg.jitter else 0.0)
            if fault:
                st.faults[fault] += 1
        try:
            return await self._respond(messages, body, fault, max(0.0, delay))
        finally:
            with st.lock:
                st.in_flight -= 1
                st.last_response_at = time.time()

    async def _respond(
        self, messages: list[dict[str, str]], body: dict[str, Any], fault: str | None, delay: float
    ) -> bool:
        cfg = self.state.config
        if delay:
            await asyncio.sleep(delay)
        if fault == "429":
            await self.send(
                429, b'{"error": {"message": "rate limited"}}', {"Retry-After": f"{cfg.retry_after:g}"}
            )
            return True
        if fault in ("500", "503"):
            await self.send(int(fault), b'{"error": {"message": "server error"}}')
            return True
        if fault == "reset":  # SO_LINGER 0: closing sends a TCP RST instead of a clean FIN
            sock = self.writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.writer.transport.abort()
            return False
        if fault == "hang":
            await asyncio.sleep(cfg.hang_seconds)
            return False
        if body.get("logprobs") and cfg.refuse_logprobs:
            await self.send(400, b'{"error": {"message": "logprobs are not supported for this model"}}')
            return True
        text = self._answer(messages, sampling_salt(body), str(body.get("model", cfg.model_name)))
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        if body.get("logprobs") and cfg.logprobs:
            scripted = next((v for k, v in cfg.letter_logprobs.items() if k in _prompt(messages)), None)
            k = int(body.get("top_logprobs") or 0)
            choice["logprobs"] = {"content": token_logprobs(text, messages, k, scripted), "refusal": None}
        payload: dict[str, Any] = {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", cfg.model_name),
            "choices": [] if fault == "empty_choices" else [choice],
            "usage": {
                "prompt_tokens": sum(len(m.get("content", "")) // 4 for m in messages),
                "completion_tokens": max(1, len(text) // 4),
                "total_tokens": 0,
            },
        }
        data = json.dumps(payload).encode()
        if fault == "truncated":
            data = data[: len(data) // 2]
        await self.send(200, data)
        with self.state.lock:
            self.state.completed += 1
        return True

    def _answer(self, messages: list[dict[str, str]], salt: str, model: str) -> str:
        cfg = self.state.config
        prompt = _prompt(messages)
        for needle, reply in cfg.answers.items():
            if needle in prompt:
                return reply
        if is_judge_prompt(messages):
            planted = cfg.judge_fn(model, messages) if cfg.judge_fn is not None else None
            return planted if planted is not None else default_judge(messages, model)
        if cfg.answer_fn is not None:
            return cfg.answer_fn(messages)
        return default_answer(messages, salt)


class LoopbackServer:
    """Run the server on its own event loop in a background thread:
    `with LoopbackServer(ServerConfig(latency=0.01)) as s: ... s.base_url ... s.state.requests`."""

    def __init__(self, config: ServerConfig | None = None, port: int = 0):
        self.config = config or ServerConfig()
        self.state = State(self.config)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(1024)
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"loopback-{self.port}")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Connection(self.state, reader, writer).serve()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, sock=self._sock, backlog=1024, limit=1 << 20)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    def start(self) -> LoopbackServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("loopback server did not start")
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        def _shutdown() -> None:
            if self._server is not None:
                self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(_shutdown)
        self._thread.join(10)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--retry-after", type=float, default=0.05)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    args = parser.parse_args(argv)
    cfg = ServerConfig(
        latency=args.latency,
        jitter=args.jitter,
        fault_rate=args.fault_rate,
        faults=tuple(f for f in args.faults.split(",") if f),
        retry_after=args.retry_after,
        hang_seconds=args.hang_seconds,
        seed=args.seed,
    )
    server = LoopbackServer(cfg, args.port).start()
    print(json.dumps({"port": server.port, "base_url": server.base_url}), flush=True)
    try:
        time.sleep(args.max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
