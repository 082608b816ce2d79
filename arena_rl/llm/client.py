"""One call path to a model: cache first, then rate limit, retries with backoff, and usage.

Every agent that talks to a model goes through :class:`LLMClient`, so the counts an agent
reports (calls, cache hits, tokens, latency, cost) mean the same thing whatever the backend.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from arena_rl.llm.backends import Backend, BackendError, Messages, Sampling, TransientBackendError
from arena_rl.llm.cache import CachedAnswer, ResponseCache, cache_key
from arena_rl.llm.prices import Budget, Price, estimate_tokens


@dataclass
class Usage:
    """Counters since the last reset (one tournament, for an agent)."""

    calls: int = 0
    """Requests that reached the model (cache misses), retries not counted."""
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    """Wall time of the model calls that were made, retries and backoff included."""
    cost_usd: float = 0.0
    """Estimated from the price table; NaN when the model has no price listed."""
    retries: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


class _RateLimiter:
    """Requests and tokens per minute through one backend in this process (all agents and
    persona users of a worker share it); callers sleep until their call fits the last minute."""

    _lock = threading.Lock()
    _next: dict[str, float] = {}  # noqa: RUF012 -- shared on purpose, by backend identity
    _tokens: dict[str, deque[tuple[float, int]]] = {}  # noqa: RUF012 -- (when, tokens) of calls

    @classmethod
    def wait(
        cls,
        key: str,
        per_minute: float | None,
        tokens_per_minute: float | None = None,
        tokens: int = 0,
    ) -> None:
        if per_minute:
            with cls._lock:
                now = time.monotonic()
                slot = max(now, cls._next.get(key, now))
                cls._next[key] = slot + 60.0 / per_minute
            if slot > now:
                time.sleep(slot - now)
        if tokens_per_minute:
            cls._wait_tokens(key, tokens_per_minute, tokens)

    @classmethod
    def _wait_tokens(cls, key: str, per_minute: float, tokens: int) -> None:
        while True:
            with cls._lock:
                now = time.monotonic()
                window = cls._tokens.setdefault(key, deque())
                while window and window[0][0] <= now - 60.0:
                    window.popleft()
                used = sum(n for _, n in window)
                if not window or used + tokens <= per_minute:  # a lone call always goes
                    window.append((now, tokens))
                    return
                wait = window[0][0] + 60.0 - now
            time.sleep(max(wait, 0.01))


class LLMClient:
    """Answers chat requests from the cache or the backend, and counts what they cost.

    Args:
        backend: where uncached answers come from.
        cache: the shared answer store; None: no caching.
        price: the model's price (:class:`~arena_rl.llm.prices.PriceTable`); None: unknown.
        budget: a spending cap shared with other clients; a call that could pass it raises
            :class:`~arena_rl.llm.prices.BudgetExhausted` instead of being made.
        max_calls_per_minute: rate limit per backend per process; None: none.
        max_tokens_per_minute: token rate limit (prompt and completion) likewise.
        max_retries: retries of a transient failure (connection, timeout, 429, 5xx).
        backoff_s: first retry delay; doubled each time.
    """

    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache | None,
        *,
        price: Price | None = None,
        budget: Budget | None = None,
        max_calls_per_minute: float | None = None,
        max_tokens_per_minute: float | None = None,
        max_retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.backend, self.cache, self.price, self.budget = backend, cache, price, budget
        self.max_calls_per_minute = max_calls_per_minute
        self.max_tokens_per_minute = max_tokens_per_minute
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.usage = Usage()

    def key(self, messages: Messages, schema: Mapping[str, Any], sampling: Sampling) -> str:
        return cache_key(
            {
                "backend": self.backend.name,
                "model": self.backend.identity(),
                "messages": [dict(m) for m in messages],
                "schema": schema,
                "sampling": asdict(sampling),
            }
        )

    def complete(self, messages: Messages, schema: Mapping[str, Any], sampling: Sampling) -> str:
        """The answer text for this request: from the cache when it was asked before."""
        key = self.key(messages, schema, sampling)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cache_hits += 1
                return hit.text
        expected = estimate_tokens(json.dumps([dict(m) for m in messages]) + json.dumps(schema))
        worst = self._cost(expected, sampling.max_tokens)
        if self.budget is not None:
            self.budget.reserve(worst)
        started = time.perf_counter()
        try:
            answer = self._call(messages, schema, sampling, expected + sampling.max_tokens)
        except BaseException:
            if self.budget is not None:
                self.budget.settle(worst, 0.0)
            raise
        latency = time.perf_counter() - started
        cost = self._cost(answer.prompt_tokens, answer.completion_tokens)
        if self.budget is not None:
            self.budget.settle(worst, cost)
        u = self.usage
        u.calls += 1
        u.prompt_tokens += answer.prompt_tokens
        u.completion_tokens += answer.completion_tokens
        u.latency_s += latency
        u.cost_usd += cost
        if self.cache is not None:
            self.cache.put(
                key,
                CachedAnswer(answer.text, answer.prompt_tokens, answer.completion_tokens, latency),
            )
        return answer.text

    def _call(
        self, messages: Messages, schema: Mapping[str, Any], sampling: Sampling, tokens: int
    ) -> Any:
        attempt = 0
        while True:
            _RateLimiter.wait(
                self.backend.identity(),
                self.max_calls_per_minute,
                self.max_tokens_per_minute,
                tokens,
            )
            try:
                return self.backend.complete(messages, schema, sampling)
            except TransientBackendError as exc:
                if attempt == self.max_retries:
                    raise BackendError(f"{exc} (gave up after {attempt} retries)") from exc
                time.sleep(min(self.backoff_s * 2**attempt, 60.0))
                attempt += 1
                self.usage.retries += 1

    def _cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return math.nan if self.price is None else self.price.cost(prompt_tokens, completion_tokens)
