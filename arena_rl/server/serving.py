"""Run the app under uvicorn: in the foreground (the CLI) or in a thread (tests, notebooks).

The socket is bound before uvicorn starts, so with ``port=0`` the real port is known in time to
write it into the manifests.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from arena_rl.server.app import create_app
from arena_rl.server.runtime import ArenaRuntime


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without, Nagle + delayed ACK add ~40 ms per response
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _server(runtime: ArenaRuntime, log_level: str) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(runtime), log_level=log_level, lifespan="off", access_log=False
    )
    return uvicorn.Server(config)


@dataclass
class RunningServer:
    """A server running in a background thread; :meth:`stop` shuts it down cleanly."""

    runtime: ArenaRuntime
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.runtime.stop()


def serve_in_thread(
    runtime: ArenaRuntime, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> RunningServer:
    """Start serving ``runtime`` on a background thread; return once it accepts connections."""
    sock = bind(host, port)
    url = url_of(sock)
    runtime.start(url)
    server = _server(runtime, log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            runtime.stop()
            raise RuntimeError("the Arena server did not start")
        time.sleep(0.01)
    return RunningServer(runtime, server, thread, url)


def serve_forever(runtime: ArenaRuntime, host: str, port: int, log_level: str = "info") -> None:
    """Serve in the foreground until Ctrl-C; manifests are written once the port is bound."""
    sock = bind(host, port)
    url = url_of(sock)
    runtime.start(url)
    settings = runtime.settings
    try:
        paths = runtime.write_manifests(settings.manifest_dir) if settings.manifest_dir else []
        exp = runtime.experiment
        print(f"arena_rl Arena API on {url}  experiment {exp.experiment_id} ({exp.status})")
        print(f"time: {runtime.clock.mode}", end="")
        if runtime.clock.mode == "realtime":
            print(f", {settings.seconds_per_day:g} s per simulated day", end="")
        print()
        for path in paths:
            print(f"manifest: {path}")
        _server(runtime, log_level).run(sockets=[sock])
    finally:
        runtime.stop()
