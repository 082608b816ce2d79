"""Carry live messages from Ray workers to the driver: a bounded relay actor and a pump.

Workers push batches without waiting for an answer (a fire-and-forget actor call); the relay
keeps at most ``capacity`` messages and counts what it had to refuse; a thread in the driver
takes what is there a few times a second and publishes it to the hub, with a ``dropped``
message when the relay refused some. No service for the user to start: the relay is one more
actor of the run's own Ray, with no CPU of its own.
"""

from __future__ import annotations

import threading
from typing import Any

import ray

from arena_rl.live.hub import Hub
from arena_rl.live.messages import Message

CAPACITY = 100_000
"""Messages the relay holds between two takes (a few MB)."""


@ray.remote(num_cpus=0)
class Relay:
    """Holds pushed messages until the driver takes them; refuses, and counts, any beyond its
    capacity (the newest: what is held is already in order)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.held: list[Message] = []
        self.refused = 0

    def push(self, messages: list[Message]) -> None:
        room = self.capacity - len(self.held)
        self.held += messages[:room]
        self.refused += max(0, len(messages) - room)

    def take(self) -> tuple[list[Message], int]:
        held, refused = self.held, self.refused
        self.held, self.refused = [], 0
        return held, refused


class Pump:
    """Moves the relay's messages into ``hub`` every ``every_s`` seconds, from a daemon thread,
    until :meth:`stop` (which moves what is left first)."""

    def __init__(self, relay: Any, hub: Hub, every_s: float = 0.2) -> None:
        self.relay, self.hub, self.every_s = relay, hub, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-pump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.move()

    def move(self) -> None:
        messages, refused = ray.get(self.relay.take.remote())
        self.hub.publish(messages)
        if refused:
            self.hub.publish([{"type": "dropped", "count": refused}])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.move()
