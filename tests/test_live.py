"""The live page's stream: one format for live runs and replays, a hub that never blocks, a
read-only page server, and clear errors for what cannot be watched."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from server_support import serve

from arena_rl.config import ConfigError, build_agent, compose_config, settings_from
from arena_rl.core.events import DayClosed, EventStream
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.eventlog import schema
from arena_rl.eventlog.files import read_log, to_parquet, write_log
from arena_rl.live.feed import LiveFeed
from arena_rl.live.hub import Hub
from arena_rl.live.messages import IN_THE_LOG, encode
from arena_rl.live.outbox import Outbox
from arena_rl.live.page import PortInUseError, app_for, start_page
from arena_rl.live.replay import LogError, load, replay_messages
from arena_rl.net import bind
from arena_rl.tournament import ratings, runner
from arena_rl.tournament.live_report import LiveReport
from arena_rl.tournament.play import TournamentResult

ROOT = Path(__file__).resolve().parents[1]
WATCHED = ["+agents=[random,pid]", "tournament.n_tournaments=2", "tracking.enabled=false"]
"""Two default tournaments (seed 0) in which both agents trip their circuit breaker and ask
for updates while it is on: rejections for the guardrail feed."""


def played_live(out: Path, **options: object) -> tuple[Hub, runner.RunOutcome]:
    settings = settings_from(compose_config(WATCHED))
    hub = Hub()
    report = LiveReport(hub, len(settings.specs), settings.seed)
    outcome = runner.run_tournaments(
        settings.specs, out, build_agent, progress=False, live=report, **options
    )
    report.end("FINISHED", None, ratings.leaderboard(outcome.results, seed=settings.seed))
    return hub, outcome


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[Hub, Path]:
    out = tmp_path_factory.mktemp("live")
    hub, outcome = played_live(out, num_workers=0, in_process=True)
    assert len(outcome.results) == 2
    return hub, out


def tournament_lines(lines: list[str], tournament: int) -> list[str]:
    """The messages of one tournament that its event log also holds, as sent."""
    out = []
    for line in lines:
        message = json.loads(line)
        if message["type"] in IN_THE_LOG and message["tournament"] == tournament:
            out.append(line)
    return out


def test_a_replay_sends_the_live_runs_messages_byte_for_byte(in_process: tuple[Hub, Path]) -> None:
    hub, out = in_process
    for index in (0, 1):
        live = tournament_lines(hub.lines(), index)
        replayed = replay_messages(load(str(out), index, None), "replay")
        assert json.loads(encode(replayed[0]))["type"] == "run"
        assert [encode(m) for m in replayed[1:]] == live
        kinds = {json.loads(line)["type"] for line in live}
        assert kinds == {"day", "decision", "guardrail", "breaker"}


def test_the_stream_holds_what_the_page_needs(in_process: tuple[Hub, Path]) -> None:
    hub, out = in_process
    messages = [json.loads(line) for line in hub.lines()]
    days = [m for m in messages if m["type"] == "day"]
    # every arm, every day of both tournaments, with the six metrics and the economy
    assert len(days) == 2 * 28 * 3
    assert {m["arm"] for m in days} == {"control_arm", "random", "pid"}
    assert all(len(m["metrics"]) == 6 and len(m["economy"]) == 10 for m in days)
    rejected = [m for m in messages if m["type"] == "guardrail" and m["outcome"] == "rejected"]
    assert rejected and {m["code"] for m in rejected} == {"CIRCUIT_BREAKER_ACTIVE"}
    # the feed's rejections are the audit log's, one for one
    audited = []
    for index in (0, 1):
        result = TournamentResult.from_json((out / "tournaments" / f"{index:05d}.json").read_text())
        audited += [
            (index, int(a["sim_day"]), a["variant"], a["rejection_code"])
            for a in result.audit
            if a["rejection_code"]
        ]
    shown = [(m["tournament"], m["day"], m["arm"], m["code"]) for m in rejected]
    assert sorted(shown) == sorted(audited)
    progress = [m for m in messages if m["type"] == "progress"]
    assert [p["done"] for p in progress] == [1, 2] and progress[-1]["total"] == 2
    board = [m for m in messages if m["type"] == "leaderboard"][-1]
    assert {row["agent"] for row in board["rows"]} == {"random", "pid"}
    assert all(row["lift_low"] <= row["lift"] <= row["lift_high"] for row in board["rows"])
    assert messages[-1] == {"type": "end", "status": "FINISHED", "mlflow": None}


def test_watching_changes_no_result(in_process: tuple[Hub, Path], tmp_path: Path) -> None:
    _, out = in_process
    settings = settings_from(compose_config(WATCHED))
    unwatched = runner.run_tournaments(
        settings.specs, tmp_path, build_agent, num_workers=0, in_process=True, progress=False
    )
    for result in unwatched.results:
        path = out / "tournaments" / f"{result.index:05d}.json"
        watched = TournamentResult.from_json(path.read_text())
        for field in ("objective", "regret", "comparisons", "history", "audit", "guardrails"):
            assert getattr(watched, field) == getattr(result, field)  # all but the timings


def test_a_failing_feed_is_detached_and_the_experiment_goes_on() -> None:
    def broken(batch: list[dict[str, object]]) -> None:
        raise ConnectionError("page gone")

    hub = Hub()
    stream = EventStream([LiveFeed(broken, 0, every_s=0), LiveFeed(hub.publish, 0, every_s=0)])
    stream.publish(a_day_closed())
    stream.flush()
    assert len(stream.subscribers) == 1 and "ConnectionError: page gone" in stream.detached[0]
    [line] = hub.lines()
    assert json.loads(line)["metrics"] == {"RETENTION_RATE": None}  # NaN: null


def a_day_closed() -> DayClosed:
    metric = MetricValue(float("nan"), None, 0, "low")
    signals = Signals(5, 2, 3, 4, 1, {"RETENTION_RATE": metric})
    arrays = np.array([5]), np.array([2]), np.array([0.5])
    return DayClosed(0, ("control_arm",), ({"scanXp": 10},), *arrays, {}, (signals,))


def test_a_number_json_cannot_carry_is_sent_as_null() -> None:
    line = encode({"type": "day", "value": float("nan"), "metrics": {"x": float("inf")}})
    assert line == '{"type":"day","value":null,"metrics":{"x":null}}'


# ---- the hub --------------------------------------------------------------------------------


def test_each_reader_keeps_its_own_place_and_is_told_what_it_missed() -> None:
    hub = Hub(history=10)
    hub.publish([{"type": "progress", "done": i} for i in range(5)])
    start, batch, missed = hub.read(-1)
    assert (start, len(batch), missed) == (0, 5, 0)
    start, batch, missed = hub.read(2, limit=1)
    assert (start, [json.loads(line)["done"] for _, line in batch], missed) == (3, [3], 0)
    hub.publish([{"type": "progress", "done": i} for i in range(5, 20)])  # the oldest go
    start, batch, missed = hub.read(-1)
    assert missed == start > 0 and start + len(batch) == hub.published == 20
    assert json.loads(batch[-1][1])["done"] == 19


# ---- the page server ------------------------------------------------------------------------


def events_of(text: str) -> list[tuple[str | None, list[dict[str, object]]]]:
    """The stream's events: each one's id and its messages (an event is a JSON array)."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            out.append((fields.get("id"), json.loads(fields["data"])))
    return out


def messages_of(text: str) -> list[dict[str, object]]:
    return [m for _, batch in events_of(text) for m in batch]


@pytest.fixture
def closed_hub() -> Hub:
    hub = Hub(paced=True)
    hub.publish([{"type": "run", "source": "replay"}])
    hub.publish([{"type": "day", "day": d, "arm": a} for d in range(3) for a in ("c", "x")])
    hub.publish([{"type": "end", "status": "REPLAYED", "mlflow": None}])
    hub.close()
    return hub


def test_the_stream_sends_every_message_a_day_at_a_time(closed_hub: Hub) -> None:
    with TestClient(app_for(closed_hub)) as client:
        text = client.get("/stream", params={"speed": 1000}).text
        sent = [json.loads(line) for line in closed_hub.lines()]
        assert messages_of(text) == sent
        # a replay is paced by days: the run message, then each day's two arms (the end with
        # the last); an event's id is its last message's number
        assert [(i, len(batch)) for i, batch in events_of(text)] == [
            ("0", 1),
            ("2", 2),
            ("4", 2),
            ("7", 3),
        ]
        resumed = client.get("/stream", params={"speed": 1000}, headers={"Last-Event-ID": "5"})
        assert messages_of(resumed.text) == sent[6:]
        later = client.get("/stream", params={"speed": 1000, "from_day": 2}).text
        assert messages_of(later) == sent  # the days before are sent at once, not skipped


def test_the_page_is_read_only_and_serves_only_its_own_files(closed_hub: Hub) -> None:
    app = app_for(closed_hub)
    methods = {m for route in app.routes for m in getattr(route, "methods", ())}
    assert methods <= {"GET", "HEAD"}
    with TestClient(app) as client:
        page = client.get("/")
        assert (
            page.status_code == 200
            and "script-src 'self'" in page.headers["content-security-policy"]
        )
        assert client.get("/static/live.js").status_code == 200
        assert client.get("/static/LICENSE-uPlot.txt").status_code == 200
        assert client.get("/static/..%2Fpage.py").status_code == 404
        assert client.post("/stream").status_code == 405
        assert client.get("/stream", params={"speed": 0}).status_code == 422


def test_a_port_in_use_is_named(closed_hub: Hub) -> None:
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port}"):
            start_page(closed_hub, "127.0.0.1", port)
    finally:
        taken.close()


def test_a_page_that_leaves_mid_stream_does_not_stop_the_stream() -> None:
    hub = Hub()
    page = start_page(hub)
    try:
        hub.publish([{"type": "progress", "done": i} for i in range(3)])
        with httpx.stream("GET", page.url + "stream", timeout=5) as response:
            first = next(line for line in response.iter_lines() if line.startswith("data: "))
            assert [m["done"] for m in json.loads(first[6:])] == [0, 1, 2]
        hub.publish([{"type": "progress", "done": 3}])
        hub.close()
        text = httpx.get(page.url + "stream", timeout=5).text
        assert [m["done"] for m in messages_of(text)] == [0, 1, 2, 3]
    finally:
        page.stop()


# ---- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("live_page.port=70000", "live_page.port must be a port number"),
        ("live_page.linger_s=-1", "live_page.linger_s must be seconds >= 0"),
    ],
)
def test_bad_live_settings_are_refused_naming_the_key(override: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        settings_from(compose_config(["+agents=[random]", override]))


def test_replays_of_logs_that_cannot_be_replayed_say_why(
    in_process: tuple[Hub, Path], tmp_path: Path
) -> None:
    _, out = in_process
    with pytest.raises(LogError, match="neither a folder nor an MLflow run id"):
        load(str(tmp_path / "nothing"), None, None)
    with pytest.raises(LogError, match=r"holds 2 tournaments' logs .*--tournament"):
        load(str(out), None, None)
    with pytest.raises(LogError, match="no log of tournament 5"):
        load(str(out), 5, None)
    tables = read_log(out / "eventlog" / "00000")
    truncated = write_log(tmp_path / "truncated", to_parquet(tables))
    data = (truncated / "events.parquet").read_bytes()
    (truncated / "events.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(LogError, match="cannot read the event log"):
        load(str(truncated), None, None)
    events = tables["events"]
    kinds = events["ocel_type"].cast(pa.string())
    older = {**tables, "events": events.filter(pa.compute.not_equal(kinds, schema.DAY_CLOSED))}
    old = write_log(tmp_path / "old", to_parquet(older))
    with pytest.raises(LogError, match="older arena_rl"):
        load(str(old), None, None)
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(LogError, match="not found"):
        load("0123456789abcdef0123456789abcdef", None, db)


def test_the_replay_command_refuses_a_missing_log_before_serving(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "arena_rl", "live", "replay", str(tmp_path / "gone")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "error:" in done.stderr and "gone" in done.stderr


def test_a_tournament_whose_live_port_is_taken_runs_without_the_page(tmp_path: Path) -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "tournament.py"), "+agents=[random]",
             "tournament.n_tournaments=1", "ray.num_workers=0", "tracking.enabled=false",
             "live=true", f"live_page.port={port}", f"hydra.run.dir={tmp_path}"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
    finally:
        taken.close()
    assert done.returncode == 0, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "goes on without it" in done.stderr
    assert (tmp_path / "tournaments" / "00000.json").exists()


# ---- the served experiment --------------------------------------------------------------------


def stream_until(url: str, wanted: int) -> Iterator[dict[str, object]]:
    with httpx.stream("GET", url, timeout=10) as response:
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: "):
                for message in json.loads(line[6:]):
                    yield message
                    seen += 1
                if seen >= wanted:
                    return


def test_the_served_experiment_offers_the_page() -> None:
    with serve() as served:
        served.advance(3)
        page = served.client.get(served.url + "/live/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert served.client.get(served.url + "/live", follow_redirects=False).status_code == 307
        messages = list(stream_until(served.url + "/live/stream", 1 + 3 * 3))
        assert messages[0]["type"] == "run" and messages[0]["source"] == "served"
        assert messages[0]["arms"] == ["Control", "Alpha", "Beta"]
        days = [m for m in messages if m["type"] == "day"]
        assert {m["arm"] for m in days} == {"Control", "Alpha", "Beta"}
        assert [m["day"] for m in days] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        # the page left mid-stream: the experiment is still served
        assert served.advance(1)


def test_what_an_outbox_cannot_hold_is_counted_for_the_page() -> None:
    box = Outbox(capacity=3)
    box.put([{"type": "progress", "done": i} for i in range(2)])
    box.put([{"type": "progress", "done": i} for i in range(2, 5)])
    taken = box.take()
    assert [m.get("done") for m in taken[:3]] == [0, 1, 2]
    assert taken[3] == {"type": "dropped", "count": 2}
    assert box.take() == []  # counted once
