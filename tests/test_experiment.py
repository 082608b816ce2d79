"""run_experiment: misbehaving strategies are recorded as faults and the experiment goes on."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from agents.common import BaseAgent
from agents.random_agent import RandomAgent
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.experiment import run_experiment

SMALL = {"n_users": 900, "days": 5}


class Raises(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        raise RuntimeError("boom")


class ReturnsNaN(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return ConfigUpdate({"scanXp": float("nan")}, "nan")


class UnknownKey(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return ConfigUpdate({"xpMultiplier": 2.0}, "no such key")


class ReturnsJunk(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return {"scanXp": 12.0}  # type: ignore[return-value]


class Slow(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        time.sleep(0.05)
        return ConfigUpdate({"scanXp": 12.0}, "late")


@pytest.mark.parametrize(
    ("agent", "fault"),
    [
        (Raises(), "raised RuntimeError: boom"),
        (ReturnsNaN(), "scanXp must be finite"),
        (UnknownKey(), "unknown key 'xpMultiplier'"),
        (ReturnsJunk(), "returned dict, not a ConfigUpdate"),
        (Slow(), "over the 0.01 s limit"),
    ],
)
def test_misbehaving_agent_is_a_fault_and_the_experiment_goes_on(
    agent: BaseAgent, fault: str
) -> None:
    result = run_experiment(
        {"bad": agent, "good": RandomAgent()}, seed=0, decision_timeout_s=0.01, **SMALL
    )
    assert len(result.faults["bad"]) == SMALL["days"]
    assert all(fault in message for message in result.faults["bad"])
    assert result.faults["good"] == []
    assert result.guardrail_counts["good"]["accepted"] > 0
    assert set(result.objective) == {CONTROL_ARM, "bad", "good"}
    rails = result.guardrail_counts["bad"]
    assert rails["accepted"] == 0  # nothing it sent got through


def test_invalid_updates_reach_the_audit_log_and_trip_the_breaker() -> None:
    result = run_experiment({"bad": UnknownKey()}, seed=0, **SMALL)
    entries = [a for a in result.audit if a["variant"] == "bad"]
    codes = [a["rejection_code"] for a in entries if a["kind"] == "update"]
    assert codes[:3] == ["INVALID_UPDATE"] * 3  # the guardrails reject and log each one ...
    assert codes[3:] and set(codes[3:]) == {"CIRCUIT_BREAKER_ACTIVE"}  # ... then stop listening
    assert any(a["kind"] == "breaker_trip" for a in entries)
