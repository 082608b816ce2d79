"""The driver's share of a tournament set's live page: progress, finished tournaments, the
leaderboard with its confidence intervals, and how the run ended.

The tournaments' own messages (days, decisions, guardrails) come from the workers
(:class:`~arena_rl.live.feed.LiveFeed`); this adds what only the driver knows, as each result
arrives. The leaderboard is recomputed at most every ``every_s`` seconds while results arrive
(a bootstrap over every tournament so far), and once more at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from arena_rl.live.hub import Hub
from arena_rl.live.messages import Message
from arena_rl.tournament import ratings
from arena_rl.tournament.play import TournamentResult
from arena_rl.tournament.ratings import AgentStanding

LIVE_RESAMPLES = 500
"""Bootstrap resamples of the leaderboard while the run goes on (the final one is the
command's own)."""


class LiveReport:
    """Publishes the driver's messages to ``hub`` for a set of ``total`` tournaments."""

    def __init__(self, hub: Hub, total: int, seed: int, every_s: float = 2.0) -> None:
        self.hub, self.total, self.seed, self.every_s = hub, total, seed, every_s
        self.results: dict[int, TournamentResult] = {}
        self.failed = 0
        self._started = time.monotonic()
        self._ranked_at = -float("inf")

    def resumed(self, results: Iterable[TournamentResult]) -> None:
        """Results an earlier run stored: counted as done, ranked at once."""
        self.results |= {r.index: r for r in results}
        if self.results:
            self.hub.publish([self._progress(), self._leaderboard()])
            self._ranked_at = time.monotonic()

    def finished(self, result: TournamentResult | None) -> None:
        """One tournament is over: its result, or None if it failed."""
        messages = []
        if result is None:
            self.failed += 1
        else:
            self.results[result.index] = result
            messages.append(
                {
                    "type": "tournament",
                    "tournament": result.index,
                    "lift": result.lift,
                    "regret": result.regret,
                    "usage": result.usage,
                }
            )
        messages.append(self._progress())
        if result is not None and time.monotonic() - self._ranked_at >= self.every_s:
            messages.append(self._leaderboard())
            self._ranked_at = time.monotonic()
        self.hub.publish(messages)

    def end(
        self, status: str, mlflow: dict[str, str] | None, standings: Sequence[AgentStanding]
    ) -> None:
        """The run is over: the final leaderboard (the command's own ``standings``) and how it
        ended; the stream closes."""
        messages: list[Message] = [_rows(standings)] if standings else []
        messages.append({"type": "end", "status": status, "mlflow": mlflow})
        self.hub.publish(messages)
        self.hub.close()

    def _progress(self) -> Message:
        done = len(self.results)
        elapsed = time.monotonic() - self._started
        left = self.total - done - self.failed
        eta = elapsed / done * left if done and left > 0 else (0.0 if left <= 0 else None)
        return {
            "type": "progress",
            "done": done,
            "total": self.total,
            "failed": self.failed,
            "elapsed_s": round(elapsed, 2),
            "eta_s": eta,
        }

    def _leaderboard(self) -> Message:
        results = list(self.results.values())
        return _rows(ratings.leaderboard(results, seed=self.seed, n_resamples=LIVE_RESAMPLES))


def _rows(standings: Sequence[AgentStanding]) -> Message:
    """A leaderboard message: what the page shows of each standing."""
    rows = [
        {
            "agent": s.name,
            "tournaments": s.n,
            "lift": s.lift,
            "lift_low": s.lift_lo,
            "lift_high": s.lift_hi,
            "regret": s.regret,
            "p_best": s.p_best,
        }
        for s in standings
    ]
    return {"type": "leaderboard", "rows": rows}
