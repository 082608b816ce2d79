"""Model answers cached on disk by what produced them, so a rerun is free and identical.

The key is a hash of everything that decides an answer: backend, model, messages, answer
schema and sampling settings. The store is one SQLite file in WAL mode, which several Ray worker
processes on one machine can read and write at once (writes are single INSERTs; a busy database
is waited for, not failed).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena_rl.core.disk_cache import cache_root

CACHE_ENV = "ARENA_RL_LLM_CACHE"
"""Environment variable naming the cache file (overrides the per-user default)."""


def default_cache_path() -> Path:
    """``$ARENA_RL_LLM_CACHE``, else ``llm_cache.sqlite`` in arena_rl's cache folder
    (:func:`~arena_rl.core.disk_cache.cache_root`): one per user, so reruns from any directory
    share it."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return cache_root() / "llm_cache.sqlite"


def cache_key(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer and what it cost when it was first made."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


class ResponseCache:
    """A process-safe key -> answer store in one SQLite file.

    Args:
        path: the database file; its folder is created.
        timeout_s: how long a write waits for another process's lock.
    """

    def __init__(self, path: str | Path, timeout_s: float = 60.0) -> None:
        self.path = Path(path).expanduser().resolve()
        self.timeout_s = timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        """The process's connection, opened on first use. Any thread may use it (one at a time,
        under the lock): an agent's decisions run on the thread of whichever tournament's
        sandbox asks, not on the one that opened it."""
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
                " prompt_tokens INTEGER, completion_tokens INTEGER, latency_s REAL)"
            )
            self._conn = conn
        return self._conn

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            return self._connection().execute(sql, args).fetchone()

    def get(self, key: str) -> CachedAnswer | None:
        row = self._query(
            "SELECT text, prompt_tokens, completion_tokens, latency_s FROM answers WHERE key=?",
            (key,),
        )
        return None if row is None else CachedAnswer(row[0], int(row[1]), int(row[2]), row[3])

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Store an answer; the first writer of a key wins (both answered the same request)."""
        self._query(
            "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?)",
            (key, answer.text, answer.prompt_tokens, answer.completion_tokens, answer.latency_s),
        )

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM answers")[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __getstate__(self) -> dict[str, Any]:
        # a connection (and a lock) cannot cross processes; each process opens its own
        return {"path": self.path, "timeout_s": self.timeout_s, "_conn": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
