"""Replay: a policy asked at every logged decision point, in its own process, sees nothing of
what came after; what it would have done is compared with what was done and with what the
guardrails allowed."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import pyarrow as pa
import pytest
from replay_policies import Crashes, Doubles, Raises, Snoop

from agents.pid import PIDController
from agents.random_agent import RandomAgent
from agents.rule import RuleBased
from arena_rl.agent import VariantInfo
from arena_rl.eventlog.recorder import EventLogRecorder
from arena_rl.eventlog.replay import ReplayError, replay
from arena_rl.experiment import run_experiment
from arena_rl.scenarios import load_scenario

DAYS = 12


def logged(agents: Mapping[str, object], seed: int = 0) -> pa.Table:
    scenario = load_scenario()
    recorder = EventLogRecorder(scenario.user_events, users="none", seed=seed)
    run_experiment(agents, seed=seed, n_users=1500, days=DAYS, subscribers=[recorder])  # type: ignore[arg-type]
    return recorder.tables()["decisions"]


def info() -> VariantInfo:
    return VariantInfo.of("policy", days=DAYS)


@pytest.fixture(scope="module")
def decisions() -> pa.Table:
    return logged({"rule": RuleBased(), "random": RandomAgent()})


def test_the_logging_policy_replayed_agrees_with_itself(decisions: pa.Table) -> None:
    rule = decisions.filter(pa.compute.equal(decisions["agent"], "rule"))
    result = replay(rule, RuleBased, info())
    assert len(result.decisions) == DAYS
    assert result.agreement == 1.0, [d for d in result.decisions if not d.agrees][:2]
    assert result.faults == []


def test_a_policy_that_snoops_finds_nothing_later(decisions: pa.Table) -> None:
    result = replay(decisions, Snoop, info())
    assert len(result.decisions) == 2 * DAYS
    found = [d for d in result.decisions if d.action is not None]
    assert found == [], found[:1]
    assert result.faults == []


def test_the_snoop_does_find_the_future_when_it_is_within_reach(decisions: pa.Table) -> None:
    """The same probe, run in this process beside the whole log, finds it: so the test above
    can fail."""
    from replay_policies import _days_in

    rows = decisions.to_pylist()  # the whole log, in this frame
    assert max(_days_in(rows)) == DAYS - 1
    from arena_rl.eventlog.replay import signals_of

    metrics = [
        c[4:-6] for c in decisions.column_names if c.startswith("obs.") and c.endswith(".value")
    ]
    snoop = Snoop()
    snoop.reset(info(), __import__("numpy").random.default_rng(0))
    answer = snoop.decide(signals_of(rows[0], metrics), {})
    assert answer is not None and answer.reasoning.startswith("LEAK")


def test_faults_and_violations_are_recorded_not_trusted(decisions: pa.Table) -> None:
    raising = replay(decisions, Raises, info())
    assert all(d.action is None for d in raising.decisions)
    assert len(raising.faults) == 2 * DAYS and "policy bug" in raising.faults[0]
    doubling = replay(decisions, Doubles, info())
    assert doubling.violations == 2 * DAYS
    assert all("scanXp" in (d.violation or "") for d in doubling.decisions)
    assert doubling.agreement == 0.0


def test_a_policy_process_that_dies_is_an_error_naming_the_decision_point(
    decisions: pa.Table,
) -> None:
    with pytest.raises(ReplayError, match=r"died at decision point \d+ \(tournament 0, arm 'r"):
        replay(decisions, Crashes, info())


def test_a_stochastic_policy_with_the_same_seed_replays_the_same_draws() -> None:
    table = logged({"pid": PIDController(), "random": RandomAgent()}, seed=4)
    random_rows = table.filter(pa.compute.equal(table["agent"], "random"))
    factory = functools.partial(RandomAgent)
    first = replay(random_rows, factory, info(), seed=11)
    again = replay(random_rows, factory, info(), seed=11)
    assert [d.action for d in first.decisions] == [d.action for d in again.decisions]
    assert all(0 < d.probability <= 1 for d in first.decisions)
