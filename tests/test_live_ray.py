"""The live page on a real local Ray: workers' messages reach the page through the relay,
the same as in process, and what the relay cannot hold is counted and shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from test_live import played_live, tournament_lines

from arena_rl.live.hub import Hub
from arena_rl.live.relay import Pump, Relay

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_ray_workers_send_the_in_process_messages(local_ray: None, tmp_path: Path) -> None:
    here, _ = played_live(tmp_path / "here", num_workers=0, in_process=True)
    there, outcome = played_live(tmp_path / "ray", num_workers=2)
    assert len(outcome.results) == 2
    for index in (0, 1):
        lines = tournament_lines(there.lines(), index)
        assert lines and lines == tournament_lines(here.lines(), index)
    kinds = [json.loads(line)["type"] for line in there.lines()]
    assert kinds[-1] == "end" and kinds.count("progress") == 2 and "dropped" not in kinds


def test_what_the_relay_cannot_hold_is_counted_on_the_page(local_ray: None) -> None:
    relay = Relay.remote(capacity=3)  # type: ignore[attr-defined]
    ray.get(relay.push.remote([{"type": "progress", "done": i} for i in range(5)]))
    hub = Hub()
    pump = Pump(relay, hub, every_s=60)
    pump.stop()  # moves what is held
    sent = [json.loads(line) for line in hub.lines()]
    assert [m.get("done") for m in sent[:3]] == [0, 1, 2]
    assert sent[3] == {"type": "dropped", "count": 2}
