"""Run the app under uvicorn: in the foreground (the CLI) or in a thread (tests, notebooks).

The socket is bound before uvicorn starts, so with ``port=0`` the real port is known in time to
write it into the manifests. In the foreground, SIGTERM and Ctrl-C stop uvicorn gracefully and
then log the experiment to MLflow (:meth:`ArenaRuntime.shutdown`): uvicorn re-raises the signal it
caught once it has stopped, which with the default SIGTERM action killed the process before
anything was logged.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import uvicorn

from arena_rl.net import bind, url_of
from arena_rl.server.app import create_app
from arena_rl.server.runtime import ArenaRuntime


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


@contextmanager
def _stop_signals_noted(received: list[int]) -> Iterator[None]:
    """While uvicorn runs, SIGINT/SIGTERM only stop it (uvicorn's own handlers); the signal it
    re-raises afterwards lands here instead of killing the process before the shutdown logging.
    A second signal during that logging acts as usual (the previous handlers are back)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(sig: int, frame: FrameType | None) -> None:
        received.append(sig)

    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, note) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_forever(runtime: ArenaRuntime, host: str, port: int, log_level: str = "info") -> None:
    """Serve in the foreground until SIGTERM or Ctrl-C; manifests are written once the port is
    bound; on the way out the experiment is logged to MLflow (unless tracking is off)."""
    sock = bind(host, port)
    url = url_of(sock)
    runtime.start(url)
    settings = runtime.settings
    received: list[int] = []
    try:
        paths = runtime.write_manifests(settings.manifest_dir) if settings.manifest_dir else []
        exp = runtime.experiment
        print(f"arena_rl Arena API on {url}  experiment {exp.experiment_id} ({exp.status})")
        print(f"live page: {url}/live/")
        print(f"start: {runtime.start_id}  time: {runtime.clock.mode}", end="")
        if runtime.clock.mode == "realtime":
            print(f", {settings.seconds_per_day:g} s per simulated day", end="")
        print(flush=True)
        for path in paths:
            print(f"manifest: {path}", flush=True)
        with _stop_signals_noted(received):
            _server(runtime, log_level).run(sockets=[sock])
    finally:
        cause = signal.Signals(received[0]).name if received else "shutdown"
        if settings.tracking_enabled and settings.tracking_on_complete:
            print(f"arena_rl serve: stopping ({cause}); logging to MLflow", flush=True)
        run_id = runtime.shutdown("shutdown")
        if run_id is not None:
            print(f"arena_rl serve: MLflow run {run_id}", flush=True)
