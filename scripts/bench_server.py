"""A bounded load run against ``python -m arena_rl serve`` on 127.0.0.1.

Starts the server in a subprocess on a free port, then for each client count runs that many
concurrent agents doing the SDK's loop (``GET /signals``, ``PUT /variant/config``,
``GET /decisions``, one keep-alive connection each, as each SDK ``Agent`` has), for a fixed time,
and prints per-request latency percentiles, error counts, throughput and the load average (the
clients share the machine with the server, so a busy machine shows up in the numbers)::

    python scripts/bench_server.py                       # 50, 100, 200 clients, 15 s each
    python scripts/bench_server.py --clients 100 --seconds 30 --think 0.5
    python scripts/bench_server.py --mode manual          # no population steps during the run

The target is p99 <= 250 ms at 100 clients with the default think time. The clients speak
HTTP/1.1 by hand (httpx's async client costs more CPU than the server per request, and on a
2-core machine the clients would mostly measure themselves).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Level:
    """What one client count measured."""

    clients: int
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, route: str, ms: float, ok: bool) -> None:
        self.latencies_ms.setdefault(route, []).append(ms)
        if not ok:
            self.errors[route] = self.errors.get(route, 0) + 1

    def all_ms(self) -> list[float]:
        return [x for values in self.latencies_ms.values() for x in values]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def start_server(tmp: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[str], dict]:
    """The server subprocess and its manifests, once it serves."""
    command = [
        sys.executable, "-m", "arena_rl", "serve", "port=0", f"time.mode={args.mode}",
        f"time.seconds_per_day={args.seconds_per_day}", f"variants={args.variants}",
        f"population.n_users={args.users}", f"manifest_dir={tmp / 'm'}",
        f"hydra.run.dir={tmp / 'run'}", "tracking.enabled=false", "hydra/job_logging=disabled",
        "guardrails.breaker_rejection_limit=1000000",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    admin = tmp / "m" / "admin.json"
    deadline = time.monotonic() + 120
    while not admin.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {proc.communicate()}")
        time.sleep(0.1)
    time.sleep(0.3)
    manifests = {p.stem: json.loads(p.read_text()) for p in (tmp / "m").glob("*.json")}
    return proc, manifests


class Connection:
    """One keep-alive HTTP/1.1 connection, written by hand: httpx costs the client side several
    times the CPU, and on a small machine the clients would then measure themselves."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, token: str, body: bytes | None) -> int:
        """Send one request and read the whole response; its status."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def agent(
    host: str, port: int, token: str, level: Level, stop_at: float, think: float, index: int
) -> None:
    """One SDK-like agent: observe, act, read the log; ``think`` seconds between rounds."""
    connection = Connection(host, port)
    factor = 1.0
    await asyncio.sleep((index % 50) * think / 50)  # spread the first round, as agents start
    try:
        while time.monotonic() < stop_at:
            factor = 1.02 if factor < 1 else 0.99
            update = {"economyOverrides": {"scanXp": round(10 * factor, 3)}, "reasoning": "b"}
            for route, method, path, body in (
                ("signals", "GET", "/api/arena/signals", None),
                ("config", "PUT", "/api/arena/variant/config", json.dumps(update).encode()),
                ("decisions", "GET", "/api/arena/decisions?pageSize=20", None),
            ):
                began = time.perf_counter()
                try:
                    ok = await connection.request(method, path, token, body) < 400
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                level.record(route, (time.perf_counter() - began) * 1000, ok)
            if think:
                await asyncio.sleep(think)
    finally:
        await connection.close()


async def run_level(url: str, tokens: list[str], clients: int, args: argparse.Namespace) -> Level:
    level = Level(clients)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    began = time.monotonic()
    stop_at = began + args.seconds
    await asyncio.gather(
        *(
            agent(host, int(port), tokens[i % len(tokens)], level, stop_at, args.think, i)
            for i in range(clients)
        )
    )
    level.seconds = time.monotonic() - began
    return level


def report(level: Level, load: tuple[float, float, float]) -> str:
    everything = level.all_ms()
    parts = [
        f"{level.clients:4d} clients  {len(everything):6d} req  "
        f"{len(everything) / level.seconds:6.0f} req/s  "
        f"p50 {percentile(everything, 0.5):7.1f} ms  p99 {percentile(everything, 0.99):7.1f} ms  "
        f"max {max(everything, default=float('nan')):7.1f} ms  "
        f"errors {sum(level.errors.values())}  load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    ]
    for route, values in sorted(level.latencies_ms.items()):
        parts.append(
            f"      {route:10s} n={len(values):6d}  p50 {percentile(values, 0.5):7.1f}  "
            f"p99 {percentile(values, 0.99):7.1f}  mean {statistics.fmean(values):7.1f}  "
            f"errors {level.errors.get(route, 0)}"
        )
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=float, default=15.0, help="per client count")
    parser.add_argument(
        "--think", type=float, default=1.0, help="seconds between an agent's rounds"
    )
    parser.add_argument("--mode", choices=["realtime", "manual"], default="realtime")
    parser.add_argument("--seconds-per-day", type=float, default=10.0)
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args(argv)

    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        proc, manifests = start_server(Path(tmp), args)
        try:
            url = manifests["admin"]["apiUrl"]
            tokens = [
                m["strategyToken"]
                for name, m in manifests.items()
                if name != "admin" and not m["isControl"]
            ]
            print(
                f"server {url}  mode {args.mode}  {args.seconds_per_day:g} s/day  "
                f"{len(tokens)} treatments  {args.users} users  think {args.think:g} s"
            )
            for clients in args.clients:
                level = asyncio.run(run_level(url, tokens, clients, args))
                print(report(level, os.getloadavg()), flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
