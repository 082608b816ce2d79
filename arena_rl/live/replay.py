"""Replay a finished tournament's event log into the live page, at a chosen speed.

``python -m arena_rl live replay LOG`` where LOG is a tournament's log folder, a run's output
folder (with ``--tournament``), or an MLflow run id (its ``eventlog/`` artifacts). The page
gets the messages the live run sent (rebuilt from the log: :func:`messages.from_log`), paced
at ``--speed`` simulated days per second; the page's own controls pause, change speed and seek.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.eventlog import schema as s
from arena_rl.eventlog.files import read_log
from arena_rl.live.hub import Hub
from arena_rl.live.messages import Message, from_log, run_message


class LogError(ValueError):
    """The log cannot be replayed (missing, truncated, of an older arena_rl, or not found)."""


def load(log: str, tournament: int | None, tracking_uri: str | None) -> dict[str, pa.Table]:
    """One tournament's log tables: the only one ``log`` names, or number ``tournament``."""
    from arena_rl.config import ConfigError
    from arena_rl.eventlog.app import log_folders  # MLflow only when it is a run id

    try:
        folders, _ = log_folders(log, tracking_uri)
    except ConfigError as exc:
        raise LogError(str(exc).replace(f"log={log}:", f"{log}:")) from None
    if tournament is not None:
        folders = [f for f in folders if f.name == f"{tournament:05d}"]
        if not folders:
            raise LogError(f"{log} has no log of tournament {tournament}")
    elif len(folders) > 1:
        shown = ", ".join(str(int(f.name)) for f in folders[:10] if f.name.isdigit())
        more = ", ..." if len(folders) > 10 else ""
        raise LogError(
            f"{log} holds {len(folders)} tournaments' logs ({shown}{more}): "
            "choose one with --tournament"
        )
    try:
        tables = read_log(folders[0])
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise LogError(f"cannot read the event log in {folders[0]}: {exc}") from None
    kinds = tables["events"]["ocel_type"].cast(pa.string())
    if not pc.any(pc.equal(kinds, s.DAY_CLOSED)).as_py():
        raise LogError(
            f"{folders[0]} has no '{s.DAY_CLOSED}' events: it was written by an "
            "older arena_rl; play the tournament again to replay it"
        )
    return tables


def replay_messages(tables: dict[str, pa.Table], title: str) -> list[Message]:
    """The ``run`` message the log implies, then the tournament's messages."""
    decisions = tables["decisions"]
    agents = list(dict.fromkeys(decisions["agent"].to_pylist()))
    columns = decisions.schema.names
    metrics = [c[4:-6] for c in columns if c.startswith("obs.") and c.endswith(".value")]
    knobs = [c[8:] for c in columns if c.startswith("economy.")]
    objects = tables["objects"]
    root = objects.filter(pc.equal(objects["ocel_type"], s.TOURNAMENT))
    settings = json.loads(root["detail"][0].as_py() or "{}")
    days = int(settings.get("days") or pc.max(tables["events"]["day"]).as_py() + 1)
    run = run_message("replay", title, agents, [CONTROL_ARM, *agents], metrics, knobs, 1, days)
    return [run, *from_log(tables)]


def replay_hub(tables: dict[str, pa.Table], title: str) -> Hub:
    """A closed hub holding the whole replay, sent to each page at the page's own pace."""
    hub = Hub(paced=True)
    messages = replay_messages(tables, title)
    hub.publish([*messages, {"type": "end", "status": "REPLAYED", "mlflow": None}])
    hub.close()
    return hub


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m arena_rl live replay",
        description="Replay a finished tournament's event log into the live page.",
    )
    parser.add_argument(
        "log", help="a tournament's log folder, a run's output folder, or an MLflow run id"
    )
    parser.add_argument("--tournament", type=int, help="which tournament of a run")
    parser.add_argument(
        "--speed",
        type=float,
        default=4.0,
        help="simulated days per second to start with (default 4)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0: any free port")
    parser.add_argument(
        "--tracking-uri", help="the MLflow store of a run id (default: ./mlflow.db)"
    )
    parser.add_argument(
        "--for-s",
        type=float,
        default=None,
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    args = parser.parse_args(argv)
    from arena_rl.live.page import PortInUseError, start_page

    try:
        tables = load(args.log, args.tournament, args.tracking_uri)
    except LogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    hub = replay_hub(tables, f"replay of {Path(args.log).name}")
    try:
        page = start_page(hub, args.host, args.port)
    except PortInUseError as exc:
        print(f"error: {exc} (--port 0 takes any free port)", file=sys.stderr)
        return 2
    print(
        f"live page: {page.url}?speed={args.speed:g}\n({hub.published} messages; Ctrl-C stops)",
        flush=True,
    )
    until = time.monotonic() + (args.for_s if args.for_s is not None else float("inf"))
    try:
        while time.monotonic() < until:
            time.sleep(min(1.0, max(0.0, until - time.monotonic())))
    except KeyboardInterrupt:
        pass
    page.stop()
    return 0
