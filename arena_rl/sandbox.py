"""An agent behind a wall: every hook is called here, and whatever goes wrong is a fault.

A strategy may raise in any hook, return the wrong type, send numbers no float holds, or hang.
None of that may cost the experiment, or the other agents' results: :class:`AgentSandbox`
catches every call (``reset``, ``decide``, ``on_result``, ``action_probability``, ``usage``,
``notes``), records what went wrong as a fault for that agent, and lets it hold. With a
decision timeout, ``decide`` runs on the agent's own worker thread, so a decision that takes
too long is abandoned, not waited for: the experiment goes on at once, and the agent holds
until its late call returns (its answer is dropped).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from arena_rl.agent import Agent, VariantInfo, action_probability
from arena_rl.core.guardrails import ConfigUpdate, GuardrailResult
from arena_rl.core.knobs import KnobError, Knobs
from arena_rl.core.signals import Signals

MAX_REASONING_CHARS = 4000
"""A longer reasoning is cut (it lands in the audit log, events and MLflow)."""


def _raised(exc: BaseException) -> str:
    return f"raised {type(exc).__name__}: {exc}"


class AgentSandbox:
    """One agent's calls, contained.

    Args:
        name: the agent's name (in fault messages).
        agent: the strategy.
        knobs: the scenario's knobs (an invalid update is a fault; it still goes to the
            guardrails, which reject and audit it, as on the live platform).
        timeout_s: a decision slower than this is abandoned and is a fault (None: no limit,
            and no thread).
    """

    def __init__(self, name: str, agent: Agent, knobs: Knobs, timeout_s: float | None) -> None:
        self.name, self.agent, self.knobs, self.timeout_s = name, agent, knobs, timeout_s
        self.faults: list[str] = []
        self.seconds: list[float] = []
        """Wall time of each decision (up to the timeout for an abandoned one)."""
        self.broken = False
        """Set when ``reset`` failed: the agent holds for the whole experiment."""
        self._pool: ThreadPoolExecutor | None = None
        self._late: tuple[int, Future[Any]] | None = None
        """An abandoned decision still running: (its day, its future)."""

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        try:
            self.agent.reset(info, rng)
        except Exception as exc:
            self.broken = True
            self.faults.append(f"reset {_raised(exc)}; the agent holds for the whole experiment")

    def decide(
        self, signals: Signals, config: Mapping[str, float], day: int
    ) -> tuple[ConfigUpdate | None, float]:
        """The agent's screened answer and its stated probability (1.0 for a hold it did not
        choose: a fault, a timeout, a broken agent)."""
        if self.broken or self._still_late(day):
            return None, 1.0
        started = time.perf_counter()
        try:
            answer = self._call(signals, dict(config), day)
        except _AbandonedError:
            self.seconds.append(time.perf_counter() - started)
            return None, 1.0
        except Exception as exc:  # a faulty strategy holds; the experiment goes on
            self.seconds.append(time.perf_counter() - started)
            self.faults.append(f"day {day}: {_raised(exc)}")
            return None, 1.0
        self.seconds.append(time.perf_counter() - started)
        update = self._screened(answer, day)
        return update, self._probability(day)

    def on_result(self, result: GuardrailResult, day: int) -> None:
        try:
            self.agent.on_result(result)
        except Exception as exc:
            self.faults.append(f"day {day}: on_result {_raised(exc)}")

    def usage(self) -> dict[str, float] | None:
        """The agent's counters (``usage()``) as numbers, or None if it keeps none or they
        fail (they land in JSON results and MLflow)."""
        usage = self._report("usage", dict)
        if usage is None:
            return None
        try:
            return {str(k): float(v) for k, v in usage.items()}
        except (TypeError, ValueError) as exc:
            self.faults.append(f"usage is not counters: {exc}")
            return None

    def tokens(self) -> float | None:
        """Tokens the agent has used so far (its ``usage()``'s prompt and completion tokens,
        as a language-model agent counts them), or None if it counts none."""
        usage = self.usage()
        if usage is None or "prompt_tokens" not in usage:
            return None
        return usage["prompt_tokens"] + usage.get("completion_tokens", 0.0)

    def notes(self) -> list[str] | None:
        """The agent's own log (``notes()``), or None if it keeps none or it fails."""
        notes = self._report("notes", list)
        return None if notes is None else [str(n) for n in notes]

    def close(self) -> None:
        """Release the worker thread; a decision still running is left to finish alone."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # ---- inside ---------------------------------------------------------------------------------

    def _call(self, signals: Signals, config: dict[str, float], day: int) -> Any:
        if self.timeout_s is None:
            return self.agent.decide(signals, config)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"agent-{self.name}")
        future = self._pool.submit(self.agent.decide, signals, config)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            self._late = (day, future)
            self.faults.append(
                f"day {day}: took longer than the {self.timeout_s:g} s limit; abandoned, and "
                "the agent holds until that call returns"
            )
            raise _AbandonedError from None

    def _still_late(self, day: int) -> bool:
        """Whether an abandoned decision is still running (then this one is a hold)."""
        if self._late is None:
            return False
        started, future = self._late
        if not future.done():
            self.faults.append(f"day {day}: still deciding day {started}; holds")
            return True
        self._late = None
        return False

    def _screened(self, answer: Any, day: int) -> ConfigUpdate | None:
        """A ConfigUpdate with text reasoning and plain overrides, or None (a fault recorded).
        An invalid economy still goes to the guardrails, which reject and audit it."""
        if answer is None:
            return None
        if not isinstance(answer, ConfigUpdate):
            self.faults.append(f"day {day}: returned {type(answer).__name__}, not a ConfigUpdate")
            return None
        if not isinstance(answer.overrides, Mapping):
            kind = type(answer.overrides).__name__
            self.faults.append(f"day {day}: overrides are {kind}, not a mapping")
            return None
        reasoning = answer.reasoning
        if not isinstance(reasoning, str):
            self.faults.append(f"day {day}: reasoning is {type(reasoning).__name__}, not text")
            reasoning = repr(reasoning)
        overrides = dict(answer.overrides)
        try:
            self.knobs.validate(overrides)
        except KnobError as exc:
            self.faults.append(f"day {day}: invalid update: {exc}")
        return ConfigUpdate(overrides, reasoning[:MAX_REASONING_CHARS])

    def _probability(self, day: int) -> float:
        try:
            probability = action_probability(self.agent)
        except Exception as exc:
            self.faults.append(f"day {day}: action_probability {_raised(exc)}")
            return math.nan
        return probability

    def _report(self, hook: str, kind: type) -> Any:
        method = getattr(self.agent, hook, None)
        if not callable(method):
            return None
        try:
            return kind(method())
        except Exception as exc:
            self.faults.append(f"{hook} {_raised(exc)}")
            return None


class _AbandonedError(Exception):
    """A decision passed its timeout and was left running."""
