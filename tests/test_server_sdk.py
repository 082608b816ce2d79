"""The real tendedloop-arena SDK against a live arena_rl server on a free localhost port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_support import Served, serve
from tendedloop_agent import Agent, ConfigUpdate
from tendedloop_agent.env import ArenaEnv
from tendedloop_agent.types import Signals

from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.server.cli import admin as admin_cli

ISO_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


@pytest.fixture
def served() -> Iterator[Served]:
    with serve() as s:
        s.advance(3)  # some enrolled users and data before agents look
        yield s


@pytest.fixture
def agent(served: Served) -> Iterator[Agent]:
    with Agent(served.url, served.token("Alpha"), heartbeat_interval=1) as a:
        yield a


def test_info_observe_scoreboard(served: Served, agent: Agent) -> None:
    info = agent.info()
    assert info.variant_id == served.variant_id("Alpha")
    assert (info.variant_name, info.experiment_status, info.mode) == ("Alpha", "RUNNING", "AGENT")
    assert info.experiment_id == served.runtime.experiment.experiment_id
    assert not info.is_control
    assert info.current_config == dict(DEFAULT_ECONOMY)
    assert (info.update_interval_min, info.delta_limit_pct) == (60, 50.0)

    signals = agent.observe()
    assert signals.experiment_days == 3
    assert set(signals.metrics) == set(METRICS)
    assert signals.enrolled > 0 and 0 < signals.active_today <= signals.enrolled
    scan = signals.metrics["SCAN_FREQUENCY"]
    assert scan.sample_size == signals.active_today and scan.confidence == "high"
    assert scan.std_dev is not None and scan.value > 0

    board = agent.scoreboard()
    assert [e.variant_name for e in board] == ["Control", "Alpha", "Beta"]
    assert [e.is_control for e in board] == [True, False, False]
    assert board[1].enrolled_count == signals.enrolled
    assert (
        board[1].metrics is not None and board[1].metrics["SCAN_FREQUENCY"]["value"] == scan.value
    )


def test_act_clamps_then_rate_limits_in_sdk_shapes(served: Served, agent: Agent) -> None:
    agent.info()
    result = agent.act(ConfigUpdate({"scanXp": 100, "feedbackXp": 16}, reasoning="go big"))
    assert result.accepted and result.decision_log_id.startswith("dec_")
    assert result.applied_config == {"scanXp": 15.0, "feedbackXp": 16.0}
    assert result.clamped_deltas is not None and set(result.clamped_deltas) == {"scanXp"}
    delta = result.clamped_deltas["scanXp"]
    assert delta["clamped"] is True
    assert (delta["requested"], delta["applied"], delta["previous"]) == (100.0, 15.0, 10.0)
    assert delta["deltaPercent"] == pytest.approx(50.0)
    # the SDK merges appliedConfig into its cached info
    assert agent._info is not None and agent._info.current_config["scanXp"] == 15.0

    again = agent.act(ConfigUpdate({"scanXp": 12}, reasoning="too soon"))
    assert not again.accepted and again.rejection_reason == "RATE_LIMITED"
    assert again.next_allowed_update == "2026-01-04T01:00:00Z"  # day 3 + 60 simulated minutes
    assert again.decision_log_id and again.applied_config is None

    served.advance(61 / 1440)  # the rate limit counts simulated minutes
    later = agent.act(ConfigUpdate({"scanXp": 12}, reasoning="after the interval"))
    assert (
        later.accepted and later.clamped_deltas is None and later.applied_config == {"scanXp": 12}
    )

    log = agent.decisions(page=1, page_size=2)
    assert (log["total"], log["page"], log["pageSize"]) == (3, 1, 2)
    newest, middle = log["decisions"]
    assert newest["reasoning"] == "after the interval" and newest["accepted"] is True
    assert middle["rejectionCode"] == "RATE_LIMITED" and "next allowed" in middle["rejectionReason"]
    assert middle["economyOverrides"] == {"scanXp": 12}
    first = agent.decisions(page=2, page_size=2)["decisions"]
    assert [d["reasoning"] for d in first] == ["go big"]
    assert first[0]["clampedDeltas"]["scanXp"]["clamped"] is True
    assert agent.info().last_config_update is not None


def test_invalid_updates_are_rejections_then_trip_the_breaker(served: Served) -> None:
    def put(name: str, body: Any, **kwargs: Any) -> dict[str, Any]:
        response = served.call(
            "PUT", "/api/arena/variant/config", served.token(name), json=body, **kwargs
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]

    for overrides in ({"noSuchKey": 3}, {"scanXp": -1}, {"scanXp": "ten"}):
        data = put("Alpha", {"economyOverrides": overrides})
        assert data["accepted"] is False and data["rejectionReason"] == "INVALID_UPDATE"
        assert data["rejectionDetail"]
    # three rejected updates in a row trip the breaker: even a valid update is refused now
    data = put("Alpha", {"economyOverrides": {"scanXp": 11}})
    assert data["rejectionReason"] == "CIRCUIT_BREAKER_ACTIVE"
    assert data["nextAllowedUpdate"] == "2026-01-07T00:00:00Z"  # day 3 + 3-day cool-down
    alpha = served.admin("state")["variants"][1]
    assert alpha["breakerActive"] and alpha["guardrailCounts"]["rejected_invalid_update"] == 3

    for overrides in ({}, {"scanDailyCap": 2.5}, {"scanXp": "NaN"}):
        assert put("Beta", {"economyOverrides": overrides})["rejectionReason"] == "INVALID_UPDATE"
    # numbers JSON cannot carry as finite doubles never reach the guardrails (nor the log)
    for raw, status in ((b'{"scanXp": NaN}', 400), (b'{"scanXp": 1' + b"0" * 400 + b"}", 422)):
        refused = served.call(
            "PUT",
            "/api/arena/variant/config",
            served.token("Beta"),
            content=b'{"economyOverrides": ' + raw + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert refused.status_code == status, refused.text
        assert refused.json()["error"].startswith("invalid JSON body: economyOverrides.scanXp: ")
    log = served.call("GET", "/api/arena/decisions", served.token("Beta")).json()["data"]
    assert log["total"] == 3 and log["decisions"][-1]["economyOverrides"] == {}


def test_webhook_register_and_delete(served: Served, agent: Agent) -> None:
    hook = agent.register_webhook("http://127.0.0.1:9/hook", events=["config_updated"])
    assert hook.webhook_id.startswith("wh_") and hook.events == ["config_updated"]
    agent.delete_webhook(hook.webhook_id)
    with pytest.raises(httpx.HTTPStatusError) as err:
        agent.delete_webhook(hook.webhook_id)
    assert err.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as err:
        agent.register_webhook("http://127.0.0.1:9/hook", events=["no_such_event"])
    assert err.value.response.status_code == 400


def test_agent_run_loop_until_paused(served: Served, agent: Agent) -> None:
    seen: list[int] = []

    def decide(signals: Signals, config: dict[str, Any]) -> ConfigUpdate:
        seen.append(signals.experiment_days)
        served.advance(1)  # a classroom instructor advancing time between polls
        return ConfigUpdate({"scanXp": config["scanXp"] * 1.1}, reasoning=f"step {len(seen)}")

    agent.run(decide, poll_interval=0.01, max_iterations=6)
    assert seen == [3, 4, 5, 6, 7, 8]
    log = agent.decisions(page_size=50)
    assert log["total"] == 6 and all(d["accepted"] for d in log["decisions"])
    assert agent.info().current_config["scanXp"] == pytest.approx(10 * 1.1**6)

    # pausing makes the SDK loop stop by itself (403), instead of spinning on errors
    stopper = threading.Timer(0.3, lambda: served.admin("pause"))
    stopper.start()
    done = threading.Event()

    def run() -> None:
        agent.run(lambda s, c: None, poll_interval=0.02)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert done.wait(10), "Agent.run did not stop when the experiment was paused"
    stopper.join()
    assert agent.info().experiment_status == "PAUSED"
    assert served.runtime.experiment.state()["variants"][1]["heartbeats"] >= 1


def test_arena_env_reset_step_and_termination(served: Served) -> None:
    env = ArenaEnv(served.url, served.token("Beta"), primary_metric="RETENTION_RATE")
    try:
        obs = env.reset()
        assert obs["experiment_days"] == 3 and obs["config"]["scanXp"] == 10.0
        assert 0 < obs["metric_retention_rate"] <= 1 and obs["metric_retention_rate_n"] > 0
        obs, reward, terminated, truncated, info = env.step({"streakBonusPerDay": 20})
        assert info["accepted"] and not terminated and not truncated
        assert info["clamped_deltas"]["streakBonusPerDay"]["clamped"] is True
        assert obs["config"]["streakBonusPerDay"] == 7.5
        assert reward == 0.0  # no simulated time passed: the daily signals did not change
        _, _, terminated, truncated, info = env.step({"streakBonusPerDay": 8})
        assert truncated and not terminated and info["rejection_reason"] == "RATE_LIMITED"
        served.advance(1)
        _, reward, terminated, truncated, info = env.step({"streakBonusPerDay": 8})
        assert info["accepted"] and reward != 0.0
        served.admin("complete")
        _, _, terminated, _, info = env.step({"streakBonusPerDay": 9})
        assert terminated and "403" in info["error"]
    finally:
        env.close()


def test_lifecycle_and_admin_cli(
    served: Served, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    served.runtime.write_manifests(tmp_path)
    manifest = json.loads((tmp_path / "Alpha.json").read_text())
    assert manifest["apiUrl"] == served.url and manifest["variantName"] == "Alpha"
    assert manifest["constraints"] == {"updateIntervalMin": 60, "deltaLimitPct": 50.0}
    assert (tmp_path / "admin.json").stat().st_mode & 0o077 == 0  # owner-only
    with Agent(manifest["apiUrl"], manifest["strategyToken"]) as agent:
        assert agent.info().variant_id == manifest["variantId"]

    assert admin_cli(["pause", "--manifest-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["simulatedDay"] == 3.0
    token = manifest["strategyToken"]
    body = {"economyOverrides": {"scanXp": 11}}
    refused = served.call("PUT", "/api/arena/variant/config", token, json=body)
    assert refused.status_code == 403 and "EXPERIMENT_PAUSED" in refused.json()["error"]
    assert served.call("GET", "/api/arena/signals", token).status_code == 403
    assert served.call("GET", "/api/arena/variant", token).status_code == 200  # reads stay open
    assert admin_cli(["advance", "--manifest-dir", str(tmp_path)]) == 1  # no time while paused
    assert "PAUSED" in capsys.readouterr().err
    assert admin_cli(["resume", "--manifest-dir", str(tmp_path)]) == 0
    assert served.call("PUT", "/api/arena/variant/config", token, json=body).status_code == 200
    assert admin_cli(["complete", "--manifest-dir", str(tmp_path)]) == 0
    assert admin_cli(["resume", "--manifest-dir", str(tmp_path)]) == 1  # COMPLETED is final
    assert "illegal" in capsys.readouterr().err
    log = served.call("GET", "/api/arena/decisions", token).json()["data"]
    codes = [d.get("rejectionCode") for d in log["decisions"]]
    assert codes == [None, "EXPERIMENT_NOT_RUNNING"]  # the refused attempt is audited too
