"""The response cache: SQLite in WAL mode, keyed by a hash of the exact request.

The key covers the model's identity (backend, model, base URL, model args; never a credential), the
messages, the generation parameters (among them the per-request seed derived from the run's `--seed`)
and the draw number, so a cached answer is only reused for a request that would be identical. The
backend's `environment()` (library versions, CPU features, device) is deliberately not part of it.
Several processes may share one cache file: WAL lets readers and a writer work at once, and
`busy_timeout` makes concurrent writers wait instead of failing.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .types import Completion, stable_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
);
CREATE TABLE IF NOT EXISTS loglikelihoods (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS letter_logprobs (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def request_key(identity: dict[str, Any], payload: dict[str, Any]) -> str:
    return stable_hash({"model": identity, "request": payload})


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._setup()

    def _setup(self, attempts: int = 300) -> None:
        """Switch to WAL and create the tables. Two processes opening a new cache at once can both need
        the exclusive lock this takes, and SQLite then answers "locked" without waiting for the busy
        timeout, so the setup is retried for a while (it is idempotent)."""
        for attempt in range(attempts):
            try:
                self._db.execute("PRAGMA busy_timeout=30000")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process, fast
                self._db.executescript(SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 + random.random() * 0.05)

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT r.text, r.prompt_tokens, r.completion_tokens, r.latency_s, l.value FROM responses r "
                "LEFT JOIN letter_logprobs l ON l.key = r.key WHERE r.key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return Completion(
            text=row[0],
            prompt_tokens=row[1],
            completion_tokens=row[2],
            latency_s=row[3],
            letter_logprobs=json.loads(row[4]) if row[4] is not None else None,
        )

    def put(self, key: str, completion: Completion) -> None:
        """The reply, and its letter log-probabilities when it has them (in a table of their own, so a
        cache file written before they existed is read and extended as it is). They are written first:
        a process killed in between leaves no reply without its log-probabilities."""
        with self._lock:
            if completion.letter_logprobs is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO letter_logprobs (key, value) VALUES (?, ?)",
                    (key, json.dumps(completion.letter_logprobs)),
                )
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, text, prompt_tokens, completion_tokens, "
                "latency_s) VALUES (?, ?, ?, ?, ?)",
                (
                    key,
                    completion.text,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.latency_s,
                ),
            )

    def get_ll(self, key: str) -> list[float] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM loglikelihoods WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_ll(self, key: str, values: list[float]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO loglikelihoods (key, value) VALUES (?, ?)", (key, json.dumps(values))
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
