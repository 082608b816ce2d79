"""run_experiment: misbehaving strategies are recorded as faults and the experiment goes on."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping

import numpy as np
import pytest

from agents.common import BaseAgent
from agents.random_agent import RandomAgent
from arena_rl.agent import VariantInfo
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.core.guardrails import ConfigUpdate, GuardrailResult
from arena_rl.core.signals import Signals
from arena_rl.experiment import ExperimentResult, run_experiment

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


class Huge(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return ConfigUpdate({"scanXp": 10**400}, "more than any float")


class NumberReasoning(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return ConfigUpdate({"scanXp": 11.0}, reasoning=42)  # type: ignore[arg-type]


class ListOverrides(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return ConfigUpdate(["scanXp", 12.0], "not a mapping")  # type: ignore[arg-type]


class Holds(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return None


class RaisesInReset(Holds):
    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        raise RuntimeError("cannot start")


class RaisesInEveryOtherHook(BaseAgent):
    """Decides fine, then fails in on_result, action_probability, usage and notes."""

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return ConfigUpdate({"scanXp": 11.0}, "fine") if self.may_update(signals) else None

    def on_result(self, result: GuardrailResult) -> None:
        super().on_result(result)
        raise ValueError("on_result broke")

    def action_probability(self) -> float:
        raise ZeroDivisionError("no probability")

    def usage(self) -> dict[str, float]:
        raise KeyError("usage")

    def notes(self) -> list[str]:
        raise OSError("notes")


@pytest.mark.parametrize(
    ("agent", "fault"),
    [
        (Raises(), "raised RuntimeError: boom"),
        (ReturnsNaN(), "scanXp must be finite"),
        (UnknownKey(), "unknown key 'xpMultiplier'"),
        (ReturnsJunk(), "returned dict, not a ConfigUpdate"),
        (Huge(), "scanXp must be finite"),
        (ListOverrides(), "overrides are list, not a mapping"),
    ],
)
def test_misbehaving_agent_is_a_fault_and_the_experiment_goes_on(
    agent: BaseAgent, fault: str
) -> None:
    result = run_experiment(
        {"bad": agent, "good": RandomAgent()}, seed=0, decision_timeout_s=5.0, **SMALL
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


def good_arm(result: ExperimentResult) -> tuple[float, list[float], list[dict[str, object]]]:
    # decision ids number every arm's decisions together: the neighbour's shift them
    audit = [
        {k: v for k, v in a.items() if k != "decision_id"}
        for a in result.audit
        if a["variant"] == "good"
    ]
    return result.objective["good"], list(result.daily_value["good"]), audit


def test_a_fault_in_any_hook_is_contained_and_the_others_results_do_not_change() -> None:
    """Arms do not interfere here, so another agent that only holds is the reference: the good
    agent's arm must come out the same, bit for bit, whatever its neighbour does wrong."""
    reference = run_experiment({"bad": Holds(), "good": RandomAgent()}, seed=3, **SMALL)
    for bad in (RaisesInReset(), RaisesInEveryOtherHook(), Huge(), NumberReasoning()):
        result = run_experiment({"bad": bad, "good": RandomAgent()}, seed=3, **SMALL)
        assert result.faults["bad"], type(bad).__name__
        assert result.faults["good"] == []
        assert good_arm(result) == good_arm(reference), type(bad).__name__
    broken = run_experiment({"bad": RaisesInReset(), "good": RandomAgent()}, seed=3, **SMALL)
    assert broken.faults["bad"] == [
        "reset raised RuntimeError: cannot start; the agent holds for the whole experiment"
    ]
    hooks = run_experiment({"bad": RaisesInEveryOtherHook()}, seed=3, **SMALL)
    joined = " | ".join(hooks.faults["bad"])
    for text in ("on_result raised ValueError", "action_probability raised ZeroDivisionError",
                 "usage raised KeyError", "notes raised OSError"):  # fmt: skip
        assert text in joined
    assert hooks.guardrail_counts["bad"]["accepted"] > 0  # its decisions still count
    words = run_experiment({"bad": NumberReasoning()}, seed=3, **SMALL)
    assert "reasoning is int, not text" in words.faults["bad"][0]
    assert {a["reasoning"] for a in words.audit if a["variant"] == "bad"} <= {"42", ""}
    json.dumps(words.audit)  # the audit log stays JSON


class Hangs(BaseAgent):
    """Blocks in decide until released: a decision the run must not wait for."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        self.release.wait(timeout=60)
        return ConfigUpdate({"scanXp": 12.0}, "late")


def test_a_hanging_decision_is_abandoned_not_waited_for() -> None:
    release = threading.Event()
    try:
        result = run_experiment(
            {"slow": Hangs(release), "good": RandomAgent()}, seed=0, decision_timeout_s=0.05,
            **SMALL,
        )  # fmt: skip
        finished_before_release = not release.is_set()
    finally:
        release.set()
    assert finished_before_release  # the run ended while the call was still blocked
    first, *rest = result.faults["slow"]
    assert "took longer than the 0.05 s limit; abandoned" in first
    assert rest == [f"day {d}: still deciding day 0; holds" for d in range(1, SMALL["days"])]
    assert result.guardrail_counts["slow"]["submitted"] == 0
    assert result.faults["good"] == []
