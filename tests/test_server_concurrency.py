"""Two SDK agents on two variants of one server, concurrently, while time advances."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from server_support import serve
from tendedloop_agent import Agent, ConfigUpdate
from tendedloop_agent.types import Signals

from arena_rl.core.guardrails import GuardrailConfig

STEPS = 200


@pytest.mark.slow
def test_two_agents_concurrently_no_lost_or_crossed_decisions() -> None:
    rails = GuardrailConfig(update_interval_days=1.0, breaker_rejection_limit=10**6)
    with serve(guardrails=rails) as served:
        served.advance(1)
        stop = threading.Event()
        sent: dict[str, list[str]] = {"Alpha": [], "Beta": []}
        errors: list[BaseException] = []

        def make_decide(name: str) -> Any:
            def decide(signals: Signals, config: dict[str, Any]) -> ConfigUpdate:
                tag = f"{name}#{len(sent[name])}"
                sent[name].append(tag)
                factor = 1.05 if len(sent[name]) % 2 else 0.96
                key = "scanXp" if name == "Alpha" else "feedbackXp"
                return ConfigUpdate({key: round(config[key] * factor, 3)}, reasoning=tag)

            return decide

        def run(name: str) -> None:
            try:
                with Agent(served.url, served.token(name), heartbeat_interval=1) as agent:
                    agent.run(make_decide(name), poll_interval=0.005, max_iterations=STEPS)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        def tick() -> None:
            while not stop.wait(0.01):
                served.runtime.experiment.advance(0.05)  # 72 simulated minutes

        ticker = threading.Thread(target=tick)
        agents = [threading.Thread(target=run, args=(n,)) for n in sent]
        ticker.start()
        for t in agents:
            t.start()
        for t in agents:
            t.join(60)
        stop.set()
        ticker.join(5)
        assert not errors and not any(t.is_alive() for t in agents)

        exp = served.runtime.experiment
        logs = exp.all_decisions()
        for name, key in (("Alpha", "scanXp"), ("Beta", "feedbackXp")):
            vid = served.variant_id(name)
            log = logs[vid]
            assert [d["reasoning"] for d in log] == sent[name]  # none lost, none reordered
            assert len(log) == STEPS
            assert all(d["variantId"] == vid for d in log)
            assert all(set(d["economyOverrides"]) == {key} for d in log)  # none crossed
            accepted = [d for d in log if d["accepted"]]
            assert accepted and len(accepted) < STEPS  # the rate limit really bit
            assert exp.rails.counts(vid)["accepted"] == len(accepted)
            # the final config is exactly the last accepted value
            assert exp.rails.current_config(vid)[key] == accepted[-1]["appliedConfig"][key]
        assert exp.population.day > 1  # time really moved while they ran
        ids = [d["id"] for log in logs.values() for d in log]
        assert len(ids) == len(set(ids))
        assert exp.rails.current_config(served.variant_id("Control"))["scanXp"] == 10.0
