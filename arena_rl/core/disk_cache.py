"""A content-addressed cache of JSON results on disk, for computations that take seconds.

An entry's name is the SHA-256 of everything that decides the result (the caller passes it as
a JSON-able description); the entry repeats its key and carries a checksum of its value, so a
stale, truncated or edited file is detected and recomputed, never trusted. Writes go to a
temporary file renamed into place, so concurrent writers (two commands at once, Ray workers)
never leave a half-written entry: the last complete one wins, and all of them are equal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_ENV = "ARENA_RL_CACHE"
"""Environment variable naming arena_rl's cache folder (overrides the per-user default)."""


def cache_root() -> Path:
    """``$ARENA_RL_CACHE``, else ``$XDG_CACHE_HOME/arena_rl`` (``~/.cache/arena_rl`` when unset)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "arena_rl"


def digest(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class DiskCache:
    """One folder of entries, ``<key>.json`` each.

    Args:
        folder: where the entries live (created on the first write).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> Any | None:
        """The stored value, or None when there is none or it does not check out."""
        path = self.path(key)
        try:
            entry = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("cache entry %s is unreadable (%s): recomputing", path, exc)
            return None
        if (
            not isinstance(entry, dict)
            or entry.get("key") != key
            or entry.get("checksum") != digest(entry.get("value"))
        ):
            log.warning("cache entry %s does not match its key or checksum: recomputing", path)
            return None
        return entry["value"]

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-able) atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = json.dumps({"key": key, "checksum": digest(value), "value": value})
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{key[:12]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(entry)
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """``(value, True)`` from the cache, or ``(compute(), False)`` after storing it."""
        found = self.get(key)
        if found is not None:
            return found, True
        value = compute()
        self.put(key, value)
        return value, False
