"""Shared helpers for the server tests: a live server on a free port, a webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from arena_rl.core.guardrails import GuardrailConfig
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.specs import load_population
from arena_rl.server import ArenaRuntime, RunningServer, ServeSettings, serve_in_thread

POPULATION = load_population()
SCENARIO = load_scenario()


def settings(**overrides: Any) -> ServeSettings:
    """Small, manual-time settings: a simulated day takes about a millisecond."""
    base: dict[str, Any] = {
        "population": POPULATION,
        "scenario": SCENARIO,
        "variants": ("Alpha", "Beta"),
        "n_users": 900,
        "seed": 7,
        "time_mode": "manual",
        "days": None,
        "guardrails": GuardrailConfig(update_interval_days=60 / 1440, auto_reset=False),
        "tracking_enabled": False,
        "monitor_interval_s": 0.05,
        "webhook_backoff_s": 0.05,
        "webhook_timeout_s": 2.0,
    }
    base.update(overrides)
    return ServeSettings(**base)


@dataclass
class Served:
    """A running server plus the handles a test needs."""

    running: RunningServer
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def runtime(self) -> ArenaRuntime:
        return self.running.runtime

    def variant_id(self, name: str) -> str:
        exp = self.runtime.experiment
        return next(v.variant_id for v in exp.variants.values() if v.name == name)

    def token(self, name: str) -> str:
        return self.runtime.variant_tokens[self.variant_id(name)]

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.request(method, self.url + path, headers=headers, **kwargs)

    def admin(self, command: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        method = "GET" if command == "state" else "POST"
        response = self.call(
            method, f"/api/arena/admin/{command}", self.runtime.tokens.admin_token, json=body
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def advance(self, days: float) -> dict[str, Any]:
        return self.admin("advance", {"days": days})


@contextmanager
def serve(bind_port: int = 0, **overrides: Any) -> Iterator[Served]:
    """A server on ``bind_port`` (0: a free one) with :func:`settings` plus ``overrides``."""
    running = serve_in_thread(ArenaRuntime(settings(**overrides)), port=bind_port)
    served = Served(running)
    try:
        yield served
    finally:
        served.client.close()
        running.stop()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server that records webhook POSTs; the first ``fail_first`` answer 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[Received] = []
        self.fail_first = fail_first
        self.attempts = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                    if not failing:
                        receiver.received.append(Received(dict(self.headers.items()), body))
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def events(self, name: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.headers.get("X-Arena-Event") == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} {name} event(s), got {len(self.events(name))}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def verify(secret: str, received: Received) -> bool:
    """What a receiver does: recompute the HMAC of the raw body, compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers.get("X-Arena-Signature", ""))


def raw_exchange(url: str, requests: list[bytes], timeout: float = 10.0) -> list[bytes]:
    """Send HTTP/1.1 requests one after another on ONE keep-alive socket; the raw responses.

    httpx would silently reconnect after a reset; this does not, so a dropped connection shows
    up as a missing (empty) response.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    answers = []
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
        reader = sock.makefile("rb")
        for request in requests:
            try:
                sock.sendall(request)
                answers.append(_read_response(reader))
            except OSError:
                answers.append(b"")
    return answers


def _read_response(reader: Any) -> bytes:
    """One Content-Length-framed response (the server always sends one)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = reader.read(1)
        if not byte:
            return head
        head += byte
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + reader.read(length)


def get_request(path: str, token: str) -> bytes:
    """A keep-alive GET as raw bytes."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


def rss_bytes() -> int:
    """This process's resident memory (Linux), for the servers run in a thread here."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
