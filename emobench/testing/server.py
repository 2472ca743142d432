"""A loopback OpenAI-compatible chat-completions server with latency, jitter and fault injection.

It is the test server of the suite and the model of the benchmarks. It counts every request, records
a hash of each request's messages (so tests can prove that no finished sample was asked twice) and the
peak number of requests it served at once.

    python -m emobench.testing.server --port 8731 --latency 0.2 --fault-rate 0.2

Answers are deterministic: by default the reply to a multiple-choice prompt is a JSON answer whose
letter is derived from a hash of the prompt; `answers` maps a substring of the prompt to a fixed reply
(scripted tests), and `answer_fn` may compute one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("429", "500", "503", "reset", "hang", "truncated", "empty_choices")


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
    model_name: str = "loopback"


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

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": self.requests, "completed": self.completed, "in_flight": self.in_flight,
                    "peak_in_flight": self.peak_in_flight, "faults": dict(self.faults),
                    "prompt_hashes": dict(self.prompt_hashes)}


def prompt_hash(messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def default_answer(messages: list[dict[str, str]]) -> str:
    """A deterministic reply the harness parsers understand."""
    text = messages[-1]["content"] if messages else ""
    letters = re.findall(r"^\s*([A-Z])[\)\.]\s", text, re.MULTILINE)
    digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    if letters:
        return json.dumps({"answer": letters[digest % len(letters)]})
    if "index" in text.lower():
        return json.dumps({"index": digest % 30})
    return "A reply from the loopback server."


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State  # set on the subclass made per server

    def log_message(self, *args: Any) -> None:  # quiet
        return None

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/stats"):
            self._send(200, json.dumps(self.state.snapshot()).encode())
        elif self.path.rstrip("/").endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [
                {"id": self.state.config.model_name, "object": "model"}]}).encode())
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/").endswith("/reset"):
            self.state.reset()
            self._send(200, b"{}")
            return
        st, cfg = self.state, self.state.config
        try:
            body = json.loads(raw)
            messages = body.get("messages") or []
        except ValueError:
            self._send(400, b'{"error": {"message": "invalid JSON"}}')
            return
        with st.lock:
            st.requests += 1
            st.in_flight += 1
            st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
            st.prompt_hashes[prompt_hash(messages)] += 1
            st.auth_headers.append(self.headers.get("Authorization", ""))
            fault = st.rng.choice(cfg.faults) if cfg.faults and st.rng.random() < cfg.fault_rate else None
            delay = cfg.latency + (st.rng.uniform(-cfg.jitter, cfg.jitter) if cfg.jitter else 0.0)
            if fault:
                st.faults[fault] += 1
        try:
            self._respond(messages, body, fault, max(0.0, delay))
        finally:
            with st.lock:
                st.in_flight -= 1

    def _respond(self, messages: list[dict[str, str]], body: dict[str, Any], fault: str | None, delay: float) -> None:
        cfg = self.state.config
        if delay:
            time.sleep(delay)
        if fault == "429":
            self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": f"{cfg.retry_after:g}"})
            return
        if fault in ("500", "503"):
            self._send(int(fault), b'{"error": {"message": "server error"}}')
            return
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
            return
        if fault == "hang":
            time.sleep(cfg.hang_seconds)
            self.close_connection = True
            return
        text = self._answer(messages)
        payload: dict[str, Any] = {
            "id": "chatcmpl-loopback", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", cfg.model_name),
            "choices": [] if fault == "empty_choices" else [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": sum(len(m.get("content", "")) // 4 for m in messages),
                      "completion_tokens": max(1, len(text) // 4),
                      "total_tokens": 0},
        }
        data = json.dumps(payload).encode()
        if fault == "truncated":
            data = data[: len(data) // 2]
        self._send(200, data)
        with self.state.lock:
            self.state.completed += 1

    def _answer(self, messages: list[dict[str, str]]) -> str:
        cfg = self.state.config
        prompt = "\n".join(m.get("content", "") for m in messages)
        for needle, reply in cfg.answers.items():
            if needle in prompt:
                return reply
        if cfg.answer_fn is not None:
            return cfg.answer_fn(messages)
        return default_answer(messages)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:  # injected resets are expected
        return None


class LoopbackServer:
    """Run the server in a background thread: `with LoopbackServer(ServerConfig(latency=0.01)) as s:`."""

    def __init__(self, config: ServerConfig | None = None, port: int = 0):
        self.config = config or ServerConfig()
        self.state = State(self.config)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

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
    cfg = ServerConfig(latency=args.latency, jitter=args.jitter, fault_rate=args.fault_rate,
                       faults=tuple(f for f in args.faults.split(",") if f), retry_after=args.retry_after,
                       hang_seconds=args.hang_seconds, seed=args.seed)
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
