"""The experiment core's event stream: what is published, in what order, and that a consumer
that fails or stalls is detached without touching the experiment's result."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import pytest

from agents.random_agent import RandomAgent
from agents.ucb import UCB1
from arena_rl.config import agent_configs, build_agent
from arena_rl.core.events import (
    BreakerRecovered,
    BreakerTripped,
    DayClosed,
    DecisionMade,
    Event,
    UpdateResolved,
    UserDay,
)
from arena_rl.core.experiment import CONTROL_ARM, ExperimentCore
from arena_rl.core.guardrails import ConfigUpdate, GuardrailConfig
from arena_rl.experiment import ExperimentResult, run_experiment
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.specs import load_population


class Recorder:
    """Keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[tuple[Event, ...]] = []

    def on_day(self, events: Sequence[Event]) -> None:
        self.batches.append(tuple(events))

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


class Raises:
    def on_day(self, events: Sequence[Event]) -> None:
        raise RuntimeError("consumer bug")


class Stalls:
    def on_day(self, events: Sequence[Event]) -> None:
        time.sleep(0.3)


def lineup() -> dict[str, object]:
    configs = agent_configs(["ucb", "random"])
    return {name: build_agent(name, configs[name]) for name in configs}


def test_an_experiment_publishes_each_day_its_decisions_updates_and_close() -> None:
    recorder = Recorder()
    result = run_experiment(lineup(), seed=2, n_users=3000, days=12, subscribers=[recorder])
    assert len(recorder.batches) == 12  # one batch per simulated day
    for day, batch in enumerate(recorder.batches):
        closes = [e for e in batch if isinstance(e, DayClosed)]
        assert len(closes) == 1 and closes[0].day == day
        assert batch[-1] is closes[0]  # the close ends the day's batch
        decisions = [e for e in batch if isinstance(e, DecisionMade)]
        assert {d.agent for d in decisions} == {"ucb", "random"}  # decision_interval 1
        assert all(d.day == day and 0.0 < d.probability <= 1.0 for d in decisions)
    events = recorder.events
    updates = [e for e in events if isinstance(e, UpdateResolved)]
    submitted = sum(result.guardrail_counts[n]["submitted"] for n in ("ucb", "random"))
    assert len(updates) == submitted
    audited = [
        e for e in events if isinstance(e, UpdateResolved | BreakerTripped | BreakerRecovered)
    ]
    assert [e.entry.decision_id for e in audited] == [a["decision_id"] for a in result.audit]
    # the day's totals are the objective's: each arm's daily value, in arm order
    values = np.array([e.value for e in events if isinstance(e, DayClosed)])
    assert values[:, 1] == pytest.approx(result.daily_value["ucb"], abs=1e-12)
    assert values[:, 0] == pytest.approx(result.daily_value[CONTROL_ARM], abs=1e-12)


def test_events_are_immutable() -> None:
    recorder = Recorder()
    run_experiment({"ucb": UCB1(arms={"a": {"scanXp": 0.9}})}, seed=0, n_users=900, days=3,
                   subscribers=[recorder])  # fmt: skip
    close = next(e for e in recorder.events if isinstance(e, DayClosed))
    with pytest.raises(dataclasses.FrozenInstanceError):
        close.day = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        close.value[0] = 1.0


@pytest.mark.parametrize("consumer", [Raises(), Stalls()], ids=["raises", "stalls"])
def test_a_failing_consumer_is_detached_and_the_result_is_unchanged(consumer: object) -> None:
    def play(*subscribers: object) -> ExperimentResult:
        agents = {"random": RandomAgent()}
        return run_experiment(agents, seed=5, n_users=1500, days=6, subscribers=[*subscribers])  # type: ignore[list-item]

    clean = play()
    recorder = Recorder()
    core = ExperimentCore(
        load_population(),
        load_scenario(),
        [CONTROL_ARM, "variant_1"],
        0,
        900,
        GuardrailConfig(),
        [consumer, recorder],  # type: ignore[list-item]
    )
    core.events.slow_after_s = 0.1
    core.step_day()
    core.submit("variant_1", ConfigUpdate({"scanXp": 11.0}, "r"), 1.0)
    core.step_day()
    assert core.events.subscribers == [recorder]  # detached after its first batch
    assert len(core.events.detached) == 1 and type(consumer).__name__ in core.events.detached[0]
    assert len(recorder.batches) == 2  # the others still get every batch
    again = play(consumer)
    assert again.objective == clean.objective
    assert again.audit == clean.audit


def test_no_subscriber_no_events_built() -> None:
    core = ExperimentCore(
        load_population(), load_scenario(), [CONTROL_ARM, "v"], 0, 600, GuardrailConfig()
    )
    core.step_day()
    assert not core.events.active and core.events._pending == []


class UserRecorder(Recorder):
    user_events = True


def test_user_events_are_columns_that_add_up_to_the_day() -> None:
    recorder = UserRecorder()
    run_experiment({"random": RandomAgent()}, seed=4, n_users=2000, days=9, subscribers=[recorder])
    days = [e for e in recorder.events if isinstance(e, UserDay)]
    closes = [e for e in recorder.events if isinstance(e, DayClosed)]
    assert [d.day for d in days] == [c.day for c in closes] == list(range(9))
    churned_total = 0
    for users, close in zip(days, closes, strict=True):
        cols = users.columns
        assert {len(v) for v in cols.values()} == {len(users)}
        assert cols["arm"].dtype == np.int8 and cols["user"].dtype == np.int32
        for i in range(len(close.arms)):
            mine = cols["arm"] == i
            assert mine.sum() == close.enrolled[i]
            assert cols["active"][mine].sum() == close.active[i]
            assert cols["scans"][mine].sum() == pytest.approx(close.totals["scans"][i])
            assert cols["xp"][mine].sum(dtype=np.float64) == pytest.approx(
                close.totals["xp"][i], rel=1e-5
            )
        assert not (cols["churned"] & cols["active"]).any()  # churn is a kind of inactivity
        assert (cols["useful_feedback"] <= cols["feedback"]).all()
        churned_total += int(cols["churned"].sum())
    assert churned_total > 0


def test_asking_for_user_events_changes_no_number() -> None:
    plain = run_experiment({"random": RandomAgent()}, seed=4, n_users=2000, days=9)
    watched = run_experiment(
        {"random": RandomAgent()}, seed=4, n_users=2000, days=9, subscribers=[UserRecorder()]
    )
    assert watched.objective == plain.objective and watched.audit == plain.audit


def test_an_essential_consumer_is_never_detached() -> None:
    class SlowButEssential(Stalls):
        essential = True  # like the audit log: part of the run's results

    keeper = SlowButEssential()
    core = ExperimentCore(
        load_population(), load_scenario(), [CONTROL_ARM, "v"], 0, 600, GuardrailConfig(), [keeper]
    )
    core.events.slow_after_s = 0.1
    core.step_day()
    assert core.events.subscribers == [keeper] and core.events.detached == []
