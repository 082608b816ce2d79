"""Webhooks really delivered: signed events from a live server to a receiver the test starts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from server_support import Receiver, serve, verify
from tendedloop_agent import Agent, ConfigUpdate

from arena_rl.core.guardrails import GuardrailConfig


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_config_updated_and_anomaly_are_signed_and_scoped(receiver: Receiver) -> None:
    rails = GuardrailConfig(update_interval_days=0.0, breaker_rejection_limit=3)
    with serve(guardrails=rails) as served, Agent(served.url, served.token("Alpha")) as agent:
        served.advance(2)
        hook = agent.register_webhook(receiver.url)
        secret = served.call(
            "POST",
            "/api/arena/webhooks",
            served.token("Beta"),
            json={"url": receiver.url, "events": ["config_updated"]},
        ).json()["data"]["secret"]
        for i in range(4):  # four max-delta (clamped) updates in a row
            agent.act(ConfigUpdate({"scanXp": 1000}, reasoning=f"push {i}"))
        updates = receiver.wait_for("config_updated", 4)
        anomaly = receiver.wait_for("anomaly_detected")[0]
        alpha_secret = served.runtime.registry.subscribers(
            served.variant_id("Alpha"), "config_updated"
        )[0].secret
        for event in [*updates, anomaly]:
            assert verify(alpha_secret, event) and not verify(secret, event)
            assert event.payload["variantId"] == served.variant_id("Alpha")
            assert event.payload["webhookId"] == hook.webhook_id
            assert event.headers["X-Arena-Delivery"] == event.payload["deliveryId"]
        assert [u.payload["data"]["reasoning"] for u in updates] == [f"push {i}" for i in range(4)]
        assert updates[0].payload["data"]["clampedDeltas"]["scanXp"]["clamped"] is True
        assert anomaly.payload["data"] == {"anomaly": "CONSECUTIVE_MAX_DELTA", "count": 4}
        assert len({u.payload["id"] for u in updates}) == 4

        # a tampered body no longer verifies
        forged = type(updates[0])(updates[0].headers, updates[0].body.replace(b"push", b"PUSH"))
        assert not verify(alpha_secret, forged)
        # Beta's hook heard nothing: Alpha's events are Alpha's
        assert all(e.payload["webhookId"] == hook.webhook_id for e in receiver.received)


def test_circuit_breaker_event_and_delete_stops_delivery(receiver: Receiver) -> None:
    with serve() as served, Agent(served.url, served.token("Beta")) as agent:
        served.advance(1)
        hook = agent.register_webhook(receiver.url, events=["circuit_breaker_triggered"])
        agent.act(ConfigUpdate({"scanXp": 11}, reasoning="fine"))
        for _ in range(3):  # rate-limited three times in a row
            assert agent.act(ConfigUpdate({"scanXp": 12})).rejection_reason == "RATE_LIMITED"
        trip = receiver.wait_for("circuit_breaker_triggered")[0]
        assert "3 rejected updates in a row" in trip.payload["data"]["reason"]
        assert trip.payload["data"]["revertedConfig"]["scanXp"] == 10.0  # last safe config
        assert receiver.events("config_updated") == []  # not subscribed
        agent.delete_webhook(hook.webhook_id)
        served.advance(4)
        served.admin("reset-breaker", {"variantId": served.variant_id("Beta")})
        for _ in range(3):
            agent.act(ConfigUpdate({"scanXp": 12}))
        time.sleep(0.3)
        assert len(receiver.events("circuit_breaker_triggered")) == 1


def test_failed_deliveries_are_retried() -> None:
    flaky = Receiver(fail_first=2)
    try:
        with (
            serve(webhook_max_attempts=4) as served,
            Agent(served.url, served.token("Alpha")) as agent,
        ):
            agent.register_webhook(flaky.url, events=["config_updated"])
            agent.act(ConfigUpdate({"scanXp": 11}, reasoning="retry me"))
            event = flaky.wait_for("config_updated")[0]
            assert event.headers["X-Arena-Attempt"] == "3" and flaky.attempts == 3
            records = served.admin("state")["webhooks"]["recentDeliveries"]
            assert [(r["attempt"], r["status"], r["ok"]) for r in records] == [
                (1, 500, False),
                (2, 500, False),
                (3, 204, True),
            ]
    finally:
        flaky.close()


def test_missing_heartbeat_fires_heartbeat_timeout_once(receiver: Receiver) -> None:
    with serve() as served:
        token = served.token("Alpha")
        served.call("POST", "/api/arena/webhooks", token, json={"url": receiver.url})
        hb = served.call("POST", "/api/arena/heartbeat", token, json={"requestedPollInterval": 0.1})
        assert hb.status_code == 200 and hb.json() == {"success": True, "data": {}}
        lapse = receiver.wait_for("heartbeat_timeout")[0]
        assert lapse.payload["data"]["requestedPollInterval"] == 0.1
        assert lapse.payload["data"]["silentSeconds"] > 0.3  # 3 x the requested interval
        time.sleep(0.5)
        assert len(receiver.events("heartbeat_timeout")) == 1  # once per lapse
        served.call("POST", "/api/arena/heartbeat", token, json={"requestedPollInterval": 0.1})
        receiver.wait_for("heartbeat_timeout", 2)  # a new lapse after a new heartbeat
        # an agent that keeps beating never lapses
        served.call("POST", "/api/arena/heartbeat", token, json={"requestedPollInterval": 30})
        time.sleep(0.5)
        assert len(receiver.events("heartbeat_timeout")) == 2


def test_polling_sdk_agent_stays_alive_until_it_stops(receiver: Receiver) -> None:
    # the SDK beats every heartbeat_interval (1 s here) but promises to poll every 0.2 s:
    # its polls count as signs of life, so only a stopped agent lapses
    with serve() as served, Agent(served.url, served.token("Beta"), heartbeat_interval=1) as agent:
        agent.register_webhook(receiver.url, events=["heartbeat_timeout"])
        agent.run(lambda s, c: None, poll_interval=0.2, max_iterations=5)
        assert receiver.events("heartbeat_timeout") == []
        assert served.admin("state")["variants"][2]["heartbeats"] >= 1
        lapse = receiver.wait_for("heartbeat_timeout")[0]  # stopped agents do lapse
        assert lapse.payload["variantName"] == "Beta"
