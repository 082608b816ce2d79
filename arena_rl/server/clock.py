"""Simulated time for the served experiment: wall-clock speed or advanced by hand.

The served experiment lives on a simulated timeline measured in days (floats, like the
guardrails' ``now``): one simulated day is one population step. In ``realtime`` mode the clock runs
at ``seconds_per_day`` wall seconds per simulated day and stops while the experiment is paused; in
``manual`` mode it moves only when told (tests, classrooms). Timestamps on the wire map the
timeline onto ISO-8601 from a fixed ``epoch`` so that the same run gives the same timestamps.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

TimeMode = Literal["manual", "realtime"]
MINUTES_PER_DAY = 1440.0
DEFAULT_EPOCH = "2026-01-01T00:00:00Z"


def parse_epoch(text: str) -> datetime:
    """An ISO-8601 instant (``Z`` or an offset; naive means UTC) as an aware datetime."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"time.epoch must be an ISO-8601 instant, got {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SimClock:
    """A monotonic simulated clock in days, thread-safe.

    Args:
        mode: ``"manual"`` (moves only through :meth:`advance`) or ``"realtime"``.
        seconds_per_day: wall seconds per simulated day in realtime mode.
        epoch: the wall-clock-like instant of simulated time 0 (for ISO timestamps).
        wall: the monotonic wall clock (injectable for tests).
    """

    def __init__(
        self,
        mode: TimeMode = "manual",
        seconds_per_day: float = 60.0,
        epoch: str = DEFAULT_EPOCH,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in ("manual", "realtime"):
            raise ValueError(f"time.mode must be 'manual' or 'realtime', got {mode!r}")
        if not (math.isfinite(seconds_per_day) and seconds_per_day > 0):
            raise ValueError(f"time.seconds_per_day must be > 0, got {seconds_per_day!r}")
        self.mode: TimeMode = mode
        self.seconds_per_day = float(seconds_per_day)
        self.epoch = parse_epoch(epoch)
        self._wall = wall
        self._lock = threading.Lock()
        self._base = 0.0  # simulated days accumulated before the current running stretch
        self._since: float | None = wall() if mode == "realtime" else None

    def now(self) -> float:
        """Simulated days since the start (never decreases)."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> float:
        if self._since is None:
            return self._base
        return self._base + (self._wall() - self._since) / self.seconds_per_day

    @property
    def running(self) -> bool:
        """Whether the clock moves by itself (realtime and not frozen)."""
        return self._since is not None

    def freeze(self) -> None:
        """Stop a realtime clock (the experiment is paused or over); no-op when stopped."""
        with self._lock:
            if self._since is not None:
                self._base = self._now_locked()
                self._since = None

    def thaw(self) -> None:
        """Restart a frozen realtime clock; manual clocks never run by themselves."""
        with self._lock:
            if self.mode == "realtime" and self._since is None:
                self._since = self._wall()

    def advance(self, days: float) -> float:
        """Move a manual clock forward by ``days`` (> 0, finite); return the new time."""
        if self.mode != "manual":
            raise ValueError("the clock is in realtime mode; only a manual clock is advanced")
        if isinstance(days, bool) or not (math.isfinite(days) and days > 0):
            raise ValueError(f"days must be a finite number > 0, got {days!r}")
        with self._lock:
            self._base += float(days)
            return self._base

    def iso(self, sim_days: float, *, round_up: bool = False) -> str:
        """ISO-8601 UTC with ``Z`` for a simulated time (epoch + sim days), to the second.

        ``round_up`` for deadlines such as ``nextAllowedUpdate``: an agent that waits until the
        printed second is never early.
        """
        seconds = sim_days * 86400.0
        whole = math.ceil(seconds - 1e-6) if round_up else math.floor(seconds + 1e-6)
        moment = self.epoch + timedelta(seconds=whole)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
