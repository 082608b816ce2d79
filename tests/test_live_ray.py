"""The live page on a real local Ray: workers' messages reach the page, the same as in
process, while the tournaments run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import ray
from test_live import played_live, tournament_lines

from arena_rl.config import build_agent, compose_config, settings_from
from arena_rl.live.hub import Hub
from arena_rl.live.messages import Message
from arena_rl.tournament.live_report import LiveReport
from arena_rl.tournament.runner import run_tournaments

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


class Batches(Hub):
    """A hub that remembers how its messages arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[Message]] = []

    def publish(self, messages: Iterable[Message]) -> None:
        batch = list(messages)
        self.batches.append(batch)
        super().publish(batch)


def test_days_reach_the_page_while_the_tournament_plays(local_ray: None, tmp_path: Path) -> None:
    overrides = ["+agents=[random]", "tournament.n_tournaments=1", "population.n_users=100000"]
    settings = settings_from(compose_config(overrides))
    hub = Batches()
    report = LiveReport(hub, 1, settings.seed)
    run_tournaments(settings.specs, tmp_path, build_agent, num_workers=1, progress=False,
                    live=report)  # fmt: skip
    with_days = [b for b in hub.batches if any(m["type"] == "day" for m in b)]
    assert len(with_days) >= 2, "every day came with the result, none while it played"
    days = [m["day"] for b in with_days for m in b if m["type"] == "day"]
    assert days == sorted(days) and len(days) == 28 * 2
