"""The live page over HTTP: a static page and a server-sent event stream of one hub's messages.

Read-only by construction: every route is a GET, and none reaches the run; a page's own
position in the stream (and, in a replay, its speed and the day it starts from) lives in its
request. Agent-written text travels as JSON data and the page only ever sets it as text; the
page's content security policy also refuses any script that is not one of its own files.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import APIRouter, FastAPI, Header, HTTPException, Query
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from arena_rl.live.hub import Hub
from arena_rl.live.messages import encode
from arena_rl.net import bind, url_of

STATIC = Path(__file__).with_name("static")
"""The page's files: HTML, its script and styles, and uPlot (MIT; its licence is beside it)."""

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
POLL_S = 0.1
"""How often a page's stream looks for new messages when it has read them all."""


def router(hub: Hub) -> APIRouter:
    """The page's routes: ``/`` (the page), ``/static/<file>`` and ``/stream`` (SSE).

    ``/stream`` sends the hub's messages from the start (or after ``Last-Event-ID``, so a page
    that reconnects goes on where it was), as JSON arrays: all that is new at each look. In a
    replay (``hub.paced``), messages of days before ``from_day`` are sent at once, then one
    simulated day every ``1 / speed`` seconds.
    """
    routes = APIRouter()
    files = {p.name: p for p in STATIC.iterdir() if p.is_file()}

    @routes.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(files["index.html"], headers=HEADERS)

    @routes.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        if name not in files:  # only the page's own files: no path reaches the disk
            raise HTTPException(404, f"no file {name!r}")
        return FileResponse(files[name], headers=HEADERS)

    @routes.get("/stream", response_class=EventSourceResponse, include_in_schema=False)
    async def stream(
        from_day: int = Query(0, ge=0),
        speed: float = Query(4.0, gt=0, le=10_000, description="replay: days per second"),
        last_event_id: int | None = Header(None),
    ) -> AsyncIterator[ServerSentEvent]:
        after = -1 if last_event_id is None else last_event_id
        shown_day = from_day - 1
        while True:
            start, batch, missed = hub.read(after)
            lost = [encode({"type": "dropped", "count": missed})] if missed else []
            group, first = lost, start
            for k, (day, line) in enumerate(batch):
                if hub.paced and day > shown_day:  # a replay: one day at a time
                    if group:
                        yield _event(group, start + k - 1)
                    group, shown_day = [], day
                    await asyncio.sleep(1 / speed)
                group.append(line)
            if group:
                yield _event(group, first + len(batch) - 1)
            if batch:
                after = start + len(batch) - 1
            elif hub.closed:
                return
            else:
                await asyncio.sleep(POLL_S)

    return routes


def _event(lines: list[str], last: int) -> ServerSentEvent:
    """Messages as one event: a JSON array (one event per read, not per message, keeps a
    browser's work per message small); ``id`` is the last one's number (-1: none yet)."""
    return ServerSentEvent(raw_data=f"[{','.join(lines)}]", id=str(last) if last >= 0 else None)


def app_for(hub: Hub) -> FastAPI:
    """A stand-alone app serving the page at ``/``."""
    app = FastAPI(title="arena_rl live", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router(hub))
    return app


def mount(app: FastAPI, hub: Hub, prefix: str = "/live") -> None:
    """Serve the page at ``prefix/`` of another app (the Arena API server)."""
    app.include_router(router(hub), prefix=prefix)

    @app.get(prefix, include_in_schema=False)
    def to_page() -> RedirectResponse:  # the page's links are relative to prefix/
        return RedirectResponse(f"{prefix}/")


class PortInUseError(OSError):
    """The live page cannot listen where it was asked to."""


@dataclass
class LivePage:
    """The page, served from a background thread; :meth:`stop` ends it."""

    hub: Hub
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.hub.close()
        self.server.should_exit = True
        self.thread.join(5)


def start_page(hub: Hub, host: str = "127.0.0.1", port: int = 0) -> LivePage:
    """Serve ``hub``'s page on ``host:port`` (0: a free port) from a daemon thread; returns once
    it accepts connections. A port in use is a :class:`PortInUseError` naming it."""
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise PortInUseError(
            f"the live page cannot listen on {host}:{port}: {exc.strerror}"
        ) from exc
    config = uvicorn.Config(
        app_for(hub),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live page's server did not start")
        time.sleep(0.01)
    return LivePage(hub, f"{url_of(sock)}/", server, thread)
