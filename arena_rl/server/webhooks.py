"""Webhooks: per-variant registrations and signed, retried delivery off the request path.

Every delivery is a JSON POST whose raw body is signed with the webhook's own secret (returned
once, at registration): ``X-Arena-Signature: sha256=<hex HMAC-SHA256(secret, body)>``. Headers
also carry the event name, a unique delivery id and the wall-clock send time, so a receiver can
drop replays. A delivery that fails (connection error, timeout, non-2xx) is retried with
exponential backoff; one background thread sends everything, so a request never waits for a
receiver.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx

EVENTS: tuple[str, ...] = (
    "config_updated",
    "heartbeat_timeout",
    "circuit_breaker_triggered",
    "anomaly_detected",
)
SIGNATURE_HEADER = "X-Arena-Signature"
MAX_WEBHOOKS_PER_VARIANT = 20
MAX_URL_CHARS = 2048


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex digest>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookError(ValueError):
    """A registration the server refuses (bad URL, unknown event, too many)."""


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    variant_id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: str

    def to_api(self, *, with_secret: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "webhookId": self.webhook_id,
            "id": self.webhook_id,
            "url": self.url,
            "events": list(self.events),
            "createdAt": self.created_at,
        }
        if with_secret:
            data["secret"] = self.secret
        return data


class WebhookRegistry:
    """Registered webhooks, each owned by one variant (a token sees and deletes only its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: dict[str, Webhook] = {}

    def register(
        self, variant_id: str, url: str, events: Sequence[str] | None, created_at: str
    ) -> Webhook:
        """Add a webhook; ``events`` None or empty subscribes to all four."""
        parsed = urlparse(url)
        if len(url) > MAX_URL_CHARS or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise WebhookError(f"webhook url must be an absolute http(s) URL, got {url[:200]!r}")
        unknown = sorted(set(events or ()) - set(EVENTS))
        if unknown:
            raise WebhookError(f"unknown webhook events {unknown}; known: {', '.join(EVENTS)}")
        chosen = tuple(e for e in EVENTS if e in set(events or EVENTS))
        with self._lock:
            owned = sum(h.variant_id == variant_id for h in self._hooks.values())
            if owned >= MAX_WEBHOOKS_PER_VARIANT:
                raise WebhookError(f"at most {MAX_WEBHOOKS_PER_VARIANT} webhooks per variant")
            hook = Webhook(
                webhook_id=f"wh_{secrets.token_hex(4)}",
                variant_id=variant_id,
                url=url,
                events=chosen,
                secret="whsec_" + secrets.token_urlsafe(24),
                created_at=created_at,
            )
            self._hooks[hook.webhook_id] = hook
        return hook

    def delete(self, variant_id: str, webhook_id: str) -> bool:
        """Remove a webhook the variant owns; False if there is none (or it is another's)."""
        with self._lock:
            hook = self._hooks.get(webhook_id)
            if hook is None or hook.variant_id != variant_id:
                return False
            del self._hooks[webhook_id]
            return True

    def subscribers(self, variant_id: str, event: str) -> list[Webhook]:
        with self._lock:
            return [
                h for h in self._hooks.values() if h.variant_id == variant_id and event in h.events
            ]

    def count(self) -> int:
        with self._lock:
            return len(self._hooks)


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    hook: Webhook = field(compare=False)
    event: str = field(compare=False)
    delivery_id: str = field(compare=False)
    body: bytes = field(compare=False)
    attempt: int = field(default=1, compare=False)


@dataclass(frozen=True)
class DeliveryRecord:
    """The outcome of one attempt, kept (bounded) for the admin view and tests."""

    delivery_id: str
    webhook_id: str
    event: str
    attempt: int
    status: int | None
    ok: bool
    error: str


class WebhookDispatcher:
    """Sends queued events in one background thread, retrying failures with backoff.

    Args:
        registry: where subscribers are looked up when an event is emitted.
        max_attempts: attempts per delivery (first try included).
        backoff_s: wait before the first retry; doubles each time.
        timeout_s: per-attempt HTTP timeout.
    """

    def __init__(
        self,
        registry: WebhookRegistry,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        history: int = 1000,
    ) -> None:
        self.registry = registry
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.records: deque[DeliveryRecord] = deque(maxlen=history)
        self._queue: list[_Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def emit(self, variant_id: str, event: str, envelope: Mapping[str, Any]) -> int:
        """Queue ``envelope`` (the JSON payload) for every subscriber; return how many."""
        hooks = self.registry.subscribers(variant_id, event)
        now = time.monotonic()
        with self._cond:
            for hook in hooks:
                delivery_id = f"dlv_{secrets.token_hex(8)}"
                body = json.dumps(
                    {**envelope, "webhookId": hook.webhook_id, "deliveryId": delivery_id},
                    separators=(",", ":"),
                    allow_nan=False,
                ).encode()
                heapq.heappush(
                    self._queue, _Delivery(now, next(self._seq), hook, event, delivery_id, body)
                )
            self._cond.notify()
        return len(hooks)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="arena-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def _next(self) -> _Delivery | None:
        """Wait for the earliest due delivery; None when stopping."""
        with self._cond:
            while not self._stopping:
                if self._queue and self._queue[0].due <= time.monotonic():
                    return heapq.heappop(self._queue)
                wait = self._queue[0].due - time.monotonic() if self._queue else None
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            while (item := self._next()) is not None:
                status, error = self._send(client, item)
                ok = status is not None and 200 <= status < 300
                self.records.append(
                    DeliveryRecord(
                        item.delivery_id,
                        item.hook.webhook_id,
                        item.event,
                        item.attempt,
                        status,
                        ok,
                        error,
                    )
                )
                if not ok and item.attempt < self.max_attempts:
                    item.attempt += 1
                    item.due = time.monotonic() + self.backoff_s * 2 ** (item.attempt - 2)
                    with self._cond:
                        heapq.heappush(self._queue, item)

    def _send(self, client: httpx.Client, item: _Delivery) -> tuple[int | None, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "arena-rl-webhooks/1",
            "X-Arena-Event": item.event,
            "X-Arena-Delivery": item.delivery_id,
            "X-Arena-Attempt": str(item.attempt),
            "X-Arena-Timestamp": str(int(time.time())),
            SIGNATURE_HEADER: sign(item.hook.secret, item.body),
        }
        try:
            response = client.post(item.hook.url, content=item.body, headers=headers)
        except Exception as exc:  # any failure (bad URL, refused, timeout) is retried, never fatal
            return None, f"{type(exc).__name__}: {exc}"[:300]
        return response.status_code, "" if response.is_success else response.text[:300]
