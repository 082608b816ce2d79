"""Property test of the agent sandbox: whatever an agent does in any hook — raise, return the
wrong type, send huge, NaN, negative or non-numeric values, odd keys, non-text reasoning — the
experiment finishes, the fault is recorded as text, the audit log stays JSON, and the other
agent's arm comes out bit for bit as beside an agent that only holds."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_experiment import good_arm

from agents.common import BaseAgent
from agents.random_agent import RandomAgent
from arena_rl.core.guardrails import ConfigUpdate, GuardrailResult
from arena_rl.core.signals import Signals
from arena_rl.experiment import run_experiment
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY

SMALL = {"n_users": 600, "days": 4}

RAISE = "raise"
"""A hook's scripted behaviour that raises instead of returning."""

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
"""Any JSON-ish value, NaN and huge integers included."""

numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.sampled_from([0, -1, -0.0, 1e308, 5e-324])
)
keys = st.sampled_from(sorted(DEFAULT_ECONOMY)) | st.text(max_size=12) | st.integers()
overrides = st.dictionaries(keys, numbers | junk, max_size=4) | junk
update = st.builds(ConfigUpdate, overrides, st.text(max_size=50) | junk)
answers = st.just(RAISE) | st.none() | update | junk
"""What one decision returns (or whether it raises)."""


class Scripted(BaseAgent):
    """Plays a drawn script: per day an answer, and what each other hook does."""

    def __init__(self, script: dict[str, Any]) -> None:
        self.script = script
        self.day = 0

    def _play(self, value: Any) -> Any:
        if isinstance(value, str) and value == RAISE:
            raise RuntimeError("scripted failure")
        return value

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        decisions = self.script["decide"]
        self.day += 1
        return self._play(decisions[(self.day - 1) % len(decisions)])

    def on_result(self, result: GuardrailResult) -> None:
        self._play(self.script["on_result"])

    def action_probability(self) -> float:
        return self._play(self.script["action_probability"])  # type: ignore[no-any-return]

    def usage(self) -> dict[str, float]:
        return self._play(self.script["usage"])  # type: ignore[no-any-return]

    def notes(self) -> list[str]:
        return self._play(self.script["notes"])  # type: ignore[no-any-return]


class Holds(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return None


scripts = st.fixed_dictionaries(
    {
        "decide": st.lists(answers, min_size=1, max_size=SMALL["days"]),
        "on_result": st.just(RAISE) | st.none(),
        "action_probability": st.just(RAISE) | numbers | junk,
        "usage": st.just(RAISE) | junk,
        "notes": st.just(RAISE) | junk,
    }
)


REFERENCE = run_experiment({"bad": Holds(), "good": RandomAgent()}, seed=5, **SMALL)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts)
def test_any_misbehaviour_is_contained(script: dict[str, Any]) -> None:
    result = run_experiment(
        {"bad": Scripted(script), "good": RandomAgent()}, seed=5, decision_timeout_s=5.0, **SMALL
    )
    assert good_arm(result) == good_arm(REFERENCE)
    assert result.faults["good"] == []
    assert all(isinstance(f, str) for f in result.faults["bad"])
    json.dumps(result.audit, allow_nan=False)  # the audit log stays strict JSON
    json.dumps(result.faults)
    assert all(isinstance(a["reasoning"], str) for a in result.audit)
