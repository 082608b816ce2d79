"""Where a worker keeps a tournament's live messages until the driver takes them.

A worker plays; the driver asks every worker for what is waiting a few times a second (and
each finished tournament brings the rest with its result), so messages travel with calls that
happen anyway and no process or service is added. The outbox holds at most ``capacity``
messages: beyond that it refuses the newest and counts them, and the next take says how many
were lost (a ``dropped`` message), so a driver that falls behind never costs a worker memory.
"""

from __future__ import annotations

import threading

from arena_rl.live.messages import Message

CAPACITY = 100_000
"""Messages held between two takes (a few MB)."""


class Outbox:
    """A bounded, thread-safe queue of messages (the worker puts, the driver takes)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._held: list[Message] = []
        self._refused = 0
        self._lock = threading.Lock()

    def put(self, messages: list[Message]) -> None:
        with self._lock:
            room = self.capacity - len(self._held)
            self._held += messages[: max(room, 0)]
            self._refused += max(0, len(messages) - max(room, 0))

    def take(self) -> list[Message]:
        """Everything held, oldest first, then a ``dropped`` message if some were refused."""
        with self._lock:
            held, refused = self._held, self._refused
            self._held, self._refused = [], 0
        return [*held, {"type": "dropped", "count": refused}] if refused else held
