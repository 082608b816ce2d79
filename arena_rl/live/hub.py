"""Fan a stream of messages out to any number of pages, never holding up whoever publishes.

Publishing appends encoded messages to one bounded history: it takes a lock for a
moment and never waits on a page. Each page reads the history from its own cursor, at its own
pace. A page that falls so far behind that the oldest messages it has not read are gone is told
how many it missed (a ``dropped`` message), and so is one that joins after messages were gone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from arena_rl.live.messages import Message, encode

HISTORY = 200_000
"""Messages kept for pages that join late or read slowly (~60 MB at most)."""


class Hub:
    """The messages of one source, numbered from 0 in the order they were published.

    Args:
        history: how many of the newest messages are kept.
        paced: a replay: pages are sent its messages at a chosen speed (the page's ``speed``),
            not as fast as they can read.
    """

    def __init__(self, history: int = HISTORY, *, paced: bool = False) -> None:
        self.paced = paced
        self.history = history
        self._kept: list[tuple[int, str]] = []
        """(day or -1, encoded message), oldest first; the first is number ``_first``."""
        self._first = 0
        self._lock = threading.Lock()
        self.closed = False
        """Nothing more will be published (the run ended)."""

    def publish(self, messages: Iterable[Message]) -> None:
        lines = [(m.get("day", -1), encode(m)) for m in messages]
        with self._lock:
            self._kept += lines
            excess = len(self._kept) - self.history
            if excess > self.history // 10:  # trim in chunks: a list indexes in O(1)
                del self._kept[:excess]
                self._first += excess

    def close(self) -> None:
        self.closed = True

    @property
    def published(self) -> int:
        return self._first + len(self._kept)

    def read(self, after: int, limit: int = 2000) -> tuple[int, list[tuple[int, str]], int]:
        """Up to ``limit`` messages numbered above ``after``: the first one's number, the
        (day, encoded message) pairs, and how many numbered above ``after`` are no longer kept
        (the reader missed them)."""
        with self._lock:
            start = max(after + 1, self._first)
            missed = start - (after + 1)
            i = start - self._first
            return start, self._kept[i : i + limit], missed

    def lines(self) -> list[str]:
        """Every kept message, encoded (what a page that joined at the start was sent)."""
        with self._lock:
            return [line for _, line in self._kept]
