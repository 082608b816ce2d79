"""Subscriber: a running tournament's events as live messages, handed on a few times a second.

Messages are built as each day closes (a few per arm) and sent in batches, at most every
``every_s`` seconds and once more when the tournament ends, so a tournament of a fraction of a
second sends one batch: whatever carries them is paid for rarely.
The feed is not essential: if it fails or stalls, the event stream detaches it and the
tournament goes on, its results unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from arena_rl.core.events import DecisionMade, Event
from arena_rl.live.messages import Message, from_events

Send = Callable[[list[Message]], None]
"""Hands a batch of messages on (to a hub in this process, or a Ray worker's outbox)."""


class LiveFeed:
    """One tournament's live messages; arms are named after the agents that decide for them.

    Args:
        send: where each batch goes; it must not block (a hub's ``publish``, an outbox's
            ``put``).
        tournament: the tournament's index.
        every_s: the longest a message waits before it is sent.
        names: arm -> the name to show, where no agent's decision names it (the served
            experiment's variants).
    """

    def __init__(
        self,
        send: Send,
        tournament: int,
        every_s: float = 0.25,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.send = send
        self.tournament = tournament
        self.every_s = every_s
        self._names: dict[str, str] = dict(names or {})
        self._pending: list[Message] = []
        self._sent_at = time.monotonic()

    def on_day(self, events: Sequence[Event]) -> None:
        for e in events:
            if isinstance(e, DecisionMade):
                self._names.setdefault(e.arm, e.agent)
        self._pending += from_events(events, self.tournament, self._names)
        if time.monotonic() - self._sent_at >= self.every_s:
            self.flush()

    def flush(self) -> None:
        """Send what is waiting (call it when the tournament ends)."""
        if self._pending:
            batch, self._pending = self._pending, []
            self.send(batch)
        self._sent_at = time.monotonic()
