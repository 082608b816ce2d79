"""Tests for the five guardrails, the circuit breaker, the lifecycle and the audit log."""

from __future__ import annotations

import json
import math
import pickle

import pytest
from scipy.stats import fisher_exact

from arena_rl.core.guardrails import (
    AuditEntry,
    ClampedDelta,
    ConfigUpdate,
    ExperimentStatus,
    GuardrailConfig,
    Guardrails,
    RejectionCode,
)
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, KNOBS, EconomyError

S = ExperimentStatus
R = RejectionCode


def make(
    config: GuardrailConfig | None = None,
    status: ExperimentStatus = S.RUNNING,
    **a_overrides: float,
) -> Guardrails:
    """An experiment with variants control, a, b; ``a`` may start from a modified economy."""
    economies = {
        "control": dict(DEFAULT_ECONOMY),
        "a": {**DEFAULT_ECONOMY, **a_overrides},
        "b": dict(DEFAULT_ECONOMY),
    }
    return Guardrails(
        economies,
        control="control",
        config=config or GuardrailConfig(),
        status=status,
        knobs=KNOBS,
    )


def up(reasoning: str = "", **overrides: object) -> ConfigUpdate:
    return ConfigUpdate(overrides=overrides, reasoning=reasoning)  # type: ignore[arg-type]


# --- accepted updates and the delta clamp ------------------------------------------------------


def test_update_inside_window_is_accepted_unclamped() -> None:
    g = make()
    res = g.submit("a", up(scanXp=12), now=0.0)
    assert res.accepted is True
    assert res.rejection_code is None
    assert res.clamped is False and res.clamped_deltas == {}
    assert res.applied_config == {**DEFAULT_ECONOMY, "scanXp": 12.0}
    assert res.next_allowed_update == 1.0
    assert res.decision_id == "dec_000001"
    assert g.current_config("a")["scanXp"] == 12.0
    assert g.current_config("b")["scanXp"] == 10.0


def test_clamp_raise_compounds_across_two_updates() -> None:
    g = make()
    first = g.submit("a", up(scanXp=100), now=0.0)
    assert first.accepted is True and first.clamped is True
    assert first.applied_config is not None and first.applied_config["scanXp"] == 15.0
    assert first.clamped_deltas["scanXp"] == ClampedDelta(
        previous=10.0, requested=100.0, applied=15.0, max_delta=5.0, delta_percent=50.0
    )
    second = g.submit("a", up(scanXp=100), now=1.0)
    assert second.applied_config is not None and second.applied_config["scanXp"] == 22.5
    assert second.clamped_deltas["scanXp"].max_delta == 7.5
    assert g.current_config("a")["scanXp"] == 22.5


def test_clamp_cut_and_only_clamped_keys_reported() -> None:
    g = make()
    res = g.submit("a", up(scanXp=2, feedbackXp=12), now=0.0)
    assert res.accepted is True
    assert res.applied_config is not None
    assert res.applied_config["scanXp"] == 5.0
    assert res.applied_config["feedbackXp"] == 12.0
    assert set(res.clamped_deltas) == {"scanXp"}
    assert res.clamped_deltas["scanXp"].delta_percent == -50.0


def test_smaller_delta_limit_narrows_window() -> None:
    g = make(GuardrailConfig(delta_limit_pct=10.0))
    res = g.submit("a", up(scanXp=100, feedbackXp=0), now=0.0)
    assert res.applied_config is not None
    assert res.applied_config["scanXp"] == pytest.approx(11.0)
    assert res.applied_config["feedbackXp"] == pytest.approx(13.5)


def test_zero_current_value_can_come_back() -> None:
    g = make(scanXp=0.0)
    res = g.submit("a", up(scanXp=100), now=0.0)
    delta = res.clamped_deltas["scanXp"]
    assert res.applied_config is not None and res.applied_config["scanXp"] == 5.0
    assert (delta.previous, delta.applied, delta.max_delta) == (0.0, 5.0, 5.0)
    assert delta.delta_percent == 50.0  # relative to the default, the window's reference
    assert math.isfinite(delta.delta_percent)
    small = make(scanXp=0.0).submit("a", up(scanXp=3), now=0.0)
    assert small.applied_config is not None and small.applied_config["scanXp"] == 3.0
    assert small.clamped is False


@pytest.mark.parametrize(
    ("current", "requested", "expected"),
    [
        (5.0, 100, 7.0),  # window [2.5, 7.5]: 7.5 rounds to 8, outside -> toward current
        (5.0, 0, 3.0),  # 2.5 rounds to 2, outside -> toward current
        (7.0, 100, 10.0),  # 10.5 rounds half-even to 10, inside
        (9.0, 100, 13.0),  # 13.5 rounds to 14, outside -> 13
        (20.0, 100, 30.0),  # already whole
        (20.0, 12, 12.0),  # inside the window, untouched
    ],
)
def test_integer_cap_rounding_stays_in_window(
    current: float, requested: int, expected: float
) -> None:
    g = make(scanDailyCap=current)
    res = g.submit("a", up(scanDailyCap=requested), now=0.0)
    assert res.accepted is True
    assert res.applied_config is not None
    assert res.applied_config["scanDailyCap"] == expected
    assert float(res.applied_config["scanDailyCap"]).is_integer()
    assert res.clamped is (expected != requested)


def test_to_api_superset_shape() -> None:
    delta = make().submit("a", up(scanXp=100), now=0.0).clamped_deltas["scanXp"]
    assert delta.to_api() == {
        "previous": 10.0,
        "requested": 100.0,
        "applied": 15.0,
        "clamped": True,
        "deltaPercent": 50.0,
        "maxDelta": 5.0,
        "baseline": 10.0,
    }


# --- rejections and their order ----------------------------------------------------------------


def test_control_lock() -> None:
    g = make()
    res = g.submit("control", up(scanXp=11), now=0.0)
    assert res.accepted is False
    assert res.rejection_code is R.CONTROL_VARIANT_IMMUTABLE
    assert res.applied_config is None
    assert g.current_config("control")["scanXp"] == 10.0


@pytest.mark.parametrize("status", [S.PAUSED, S.RECRUITING, S.DRAFT, S.COMPLETED])
def test_status_gate(status: ExperimentStatus) -> None:
    g = make(status=status)
    res = g.submit("a", up(scanXp=11), now=0.0)
    assert res.rejection_code is R.EXPERIMENT_NOT_RUNNING
    assert str(status) in res.detail
    assert g.current_config("a")["scanXp"] == 10.0


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"bogusXp": 5}, "bogusXp"),
        ({"scanXp": float("nan")}, "scanXp"),
        ({"scanXp": float("inf")}, "scanXp"),
        ({"scanXp": -1}, "at least 0"),
        ({"scanXp": "ten"}, "number"),
        ({"scanDailyCap": 20.5}, "whole"),
        ({}, "empty"),
    ],
)
def test_invalid_update(overrides: dict[str, object], needle: str) -> None:
    g = make()
    res = g.submit("a", ConfigUpdate(overrides=overrides), now=0.0)  # type: ignore[arg-type]
    assert res.rejection_code is R.INVALID_UPDATE
    assert needle in res.detail
    assert res.next_allowed_update is None
    assert g.current_config("a") == dict(DEFAULT_ECONOMY)


def test_non_mapping_overrides_is_invalid_update() -> None:
    res = make().submit("a", ConfigUpdate(overrides=[1, 2]), now=0.0)  # type: ignore[arg-type]
    assert res.rejection_code is R.INVALID_UPDATE
    assert "mapping" in res.detail


def test_order_control_lock_before_status_gate() -> None:
    res = make(status=S.PAUSED).submit("control", up(scanXp=11), now=0.0)
    assert res.rejection_code is R.CONTROL_VARIANT_IMMUTABLE


def test_order_status_gate_before_breaker() -> None:
    g = make(GuardrailConfig(auto_reset=False))
    assert g.check_harm("a", 0, 100, 60, 100, now=0.0) is True
    g.set_status(S.PAUSED)
    assert g.submit("a", up(scanXp=11), now=1.0).rejection_code is R.EXPERIMENT_NOT_RUNNING


def test_order_breaker_before_validation() -> None:
    g = make()
    g.check_harm("a", 0, 100, 60, 100, now=0.0)
    res = g.submit("a", up(bogusXp=1), now=1.0)
    assert res.rejection_code is R.CIRCUIT_BREAKER_ACTIVE


def test_order_validation_before_rate_limit() -> None:
    g = make()
    assert g.submit("a", up(scanXp=11), now=0.0).accepted is True
    res = g.submit("a", up(bogusXp=1), now=0.5)
    assert res.rejection_code is R.INVALID_UPDATE


# --- rate limiter ------------------------------------------------------------------------------


def test_rate_limit_window_and_next_allowed_update() -> None:
    g = make()
    assert g.next_allowed_update("a") is None
    assert g.submit("a", up(scanXp=11), now=0.0).accepted is True
    assert g.next_allowed_update("a") == 1.0
    limited = g.submit("a", up(scanXp=12), now=0.5)
    assert limited.rejection_code is R.RATE_LIMITED
    assert limited.next_allowed_update == 1.0
    assert "day 1" in limited.detail
    assert g.current_config("a")["scanXp"] == 11.0
    ok = g.submit("a", up(scanXp=12), now=1.0)
    assert ok.accepted is True and ok.next_allowed_update == 2.0
    # The clock is per variant.
    assert g.submit("b", up(scanXp=12), now=1.0).accepted is True


def test_rate_limit_clock_started_only_by_accepted_updates() -> None:
    g = make(GuardrailConfig(update_interval_days=2.0))
    assert g.submit("a", up(bogusXp=1), now=0.0).rejection_code is R.INVALID_UPDATE
    assert g.next_allowed_update("a") is None
    assert g.submit("a", up(scanXp=11), now=0.5).accepted is True
    assert g.submit("a", up(scanXp=12), now=1.0).next_allowed_update == 2.5
    # The rejection at day 1.0 did not move the clock.
    assert g.submit("a", up(scanXp=12), now=2.0).next_allowed_update == 2.5
    assert g.submit("a", up(scanXp=12), now=2.5).accepted is True
    assert g.next_allowed_update("a") == 4.5


# --- circuit breaker: repeated rejections -----------------------------------------------------


def test_breaker_trips_after_consecutive_rejections_and_reverts() -> None:
    g = make()
    assert g.submit("a", up(scanXp=14), now=0.0).accepted is True
    first = g.submit("a", up(scanXp=15), now=0.1)
    second = g.submit("a", up(scanXp=15), now=0.2)
    assert (first.next_allowed_update, second.next_allowed_update) == (1.0, 1.0)
    assert not g.breaker_active("a")
    third = g.submit("a", up(scanXp=15), now=0.3)
    assert third.rejection_code is R.RATE_LIMITED
    assert "tripped" in third.detail
    assert third.next_allowed_update == pytest.approx(3.3)
    assert g.breaker_active("a")
    assert g.current_config("a") == dict(DEFAULT_ECONOMY)  # never judged safe: the start
    assert g.audit_log[-1].kind == "breaker_trip"
    blocked = g.submit("a", up(scanXp=11), now=1.5)
    assert blocked.rejection_code is R.CIRCUIT_BREAKER_ACTIVE
    assert blocked.next_allowed_update == pytest.approx(3.3)
    assert g.next_allowed_update("a") == pytest.approx(3.3)


def test_mixed_invalid_and_rate_limited_rejections_count_together() -> None:
    g = make(GuardrailConfig(breaker_rejection_limit=2))
    g.submit("a", up(scanXp=11), now=0.0)
    g.submit("a", up(bogusXp=1), now=0.1)
    assert not g.breaker_active("a")
    g.submit("a", up(scanXp=12), now=0.2)
    assert g.breaker_active("a")


def test_accepted_update_resets_rejection_streak() -> None:
    g = make()
    g.submit("a", up(scanXp=11), now=0.0)
    g.submit("a", up(scanXp=12), now=0.1)
    g.submit("a", up(scanXp=12), now=0.2)
    assert g.submit("a", up(scanXp=12), now=1.0).accepted is True
    g.submit("a", up(scanXp=13), now=1.1)
    g.submit("a", up(scanXp=13), now=1.2)
    assert not g.breaker_active("a")
    assert g.counts("a")["breaker_trips"] == 0


def test_breaker_and_gate_rejections_do_not_count() -> None:
    g = make(GuardrailConfig(auto_reset=False, breaker_rejection_limit=2))
    for day in range(5):
        g.submit("control", up(scanXp=11), now=float(day))
    assert not g.breaker_active("control")
    g.check_harm("a", 0, 100, 60, 100, now=5.0)
    for day in range(6, 12):
        assert g.submit("a", up(scanXp=11), now=float(day)).rejection_code is (
            R.CIRCUIT_BREAKER_ACTIVE
        )
    assert g.counts("a")["breaker_trips"] == 1
    g.set_status(S.PAUSED)
    for day in range(12, 16):
        g.submit("b", up(scanXp=11), now=float(day))
    assert not g.breaker_active("b")


# --- circuit breaker: harm --------------------------------------------------------------------


def test_harm_below_retention_floor_trips() -> None:
    g = make()
    assert g.check_harm("a", 15, 100, 18, 100, now=0.0) is True  # 0.15 < 0.2, gap tiny
    assert g.breaker_active("a")
    trip = g.audit_log[-1]
    assert trip.kind == "breaker_trip" and "floor" in trip.detail


def test_harm_significant_gap_trips() -> None:
    g = make()
    assert fisher_exact([[80, 120], [120, 80]], alternative="less").pvalue < 0.01
    assert g.check_harm("a", 80, 200, 120, 200, now=0.0) is True
    assert "control" in g.audit_log[-1].detail


@pytest.mark.parametrize(
    ("t_active", "t_n", "c_active", "c_n"),
    [
        (11_400, 20_000, 12_000, 20_000),  # gap 0.03 < min_harm although p < alpha
        (25, 40, 30, 40),  # gap 0.125 but not significant
        (0, 20, 20, 20),  # treatment sample below min_sample
        (0, 100, 20, 20),  # control sample below min_sample
    ],
)
def test_harm_not_tripped(t_active: int, t_n: int, c_active: int, c_n: int) -> None:
    g = make()
    assert g.check_harm("a", t_active, t_n, c_active, c_n, now=0.0) is False
    assert not g.breaker_active("a")
    assert g.audit_log == ()


def test_harm_cases_are_what_they_claim() -> None:
    big = fisher_exact([[11_400, 8_600], [12_000, 8_000]], alternative="less").pvalue
    small = fisher_exact([[25, 15], [30, 10]], alternative="less").pvalue
    assert big < 0.01 and 0.6 - 0.57 < 0.05
    assert small > 0.01 and 30 / 40 - 25 / 40 >= 0.05


def test_check_harm_argument_errors() -> None:
    g = make()
    with pytest.raises(ValueError, match="control"):
        g.check_harm("control", 1, 100, 1, 100, now=0.0)
    with pytest.raises(ValueError, match="treatment counts"):
        g.check_harm("a", 101, 100, 1, 100, now=0.0)
    with pytest.raises(KeyError, match="nope"):
        g.check_harm("nope", 1, 100, 1, 100, now=0.0)


def test_trip_revert_cooldown_reset_cycle() -> None:
    g = make(GuardrailConfig(auto_reset=False))
    g.submit("a", up(scanXp=12), now=0.0)
    assert g.check_harm("a", 60, 100, 60, 100, now=1.0) is False
    assert g.last_safe_config("a")["scanXp"] == 12.0
    g.submit("a", up(scanXp=18), now=1.0)
    assert g.current_config("a")["scanXp"] == 18.0
    assert g.check_harm("a", 10, 100, 60, 100, now=2.0) is True
    assert g.current_config("a")["scanXp"] == 12.0  # reverted to last safe config
    assert g.check_harm("a", 0, 100, 60, 100, now=2.1) is False  # already tripped
    blocked = g.submit("a", up(scanXp=13), now=2.5)
    assert blocked.rejection_code is R.CIRCUIT_BREAKER_ACTIVE
    assert blocked.next_allowed_update == 5.0
    with pytest.raises(ValueError, match="day 5"):
        g.reset_breaker("a", now=4.0)
    assert g.breaker_active("a")
    g.reset_breaker("a", now=5.0)
    assert not g.breaker_active("a")
    assert g.audit_log[-1].kind == "breaker_reset"
    res = g.submit("a", up(scanXp=13), now=5.0)
    assert res.accepted is True
    assert g.current_config("a")["scanXp"] == 13.0
    with pytest.raises(ValueError, match="not active"):
        g.reset_breaker("a", now=6.0)


def test_breaker_is_per_variant() -> None:
    g = make()
    g.check_harm("a", 0, 100, 60, 100, now=0.0)
    assert g.submit("b", up(scanXp=11), now=0.5).accepted is True


def test_auto_reset_via_tick() -> None:
    g = make()
    g.check_harm("a", 0, 100, 60, 100, now=0.0)
    assert g.tick(2.9) == ()
    assert g.breaker_active("a")
    assert g.tick(3.0) == ("a",)
    assert not g.breaker_active("a")
    assert g.audit_log[-1].kind == "breaker_reset"
    assert g.counts("a")["breaker_resets"] == 1


def test_no_auto_reset_when_disabled() -> None:
    g = make(GuardrailConfig(auto_reset=False))
    g.check_harm("a", 0, 100, 60, 100, now=0.0)
    assert g.tick(10.0) == ()
    assert g.breaker_active("a")
    res = g.submit("a", up(scanXp=11), now=10.0)
    assert res.rejection_code is R.CIRCUIT_BREAKER_ACTIVE
    assert res.next_allowed_update == 3.0


def test_auto_reset_applies_on_submit_after_cooldown() -> None:
    g = make()
    g.check_harm("a", 0, 100, 60, 100, now=0.0)
    res = g.submit("a", up(scanXp=11), now=3.0)
    assert res.accepted is True
    assert [e.kind for e in g.audit_log] == ["breaker_trip", "breaker_reset", "update"]


# --- lifecycle ---------------------------------------------------------------------------------


def test_legal_lifecycle() -> None:
    g = make(status=S.DRAFT)
    for status in (S.RECRUITING, S.RUNNING, S.PAUSED, S.RUNNING, S.PAUSED, S.COMPLETED):
        g.set_status(status)
        assert g.status is status
    assert S.RUNNING.can_transition_to(S.COMPLETED)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.DRAFT, S.RUNNING),
        (S.RECRUITING, S.PAUSED),
        (S.RUNNING, S.RECRUITING),
        (S.PAUSED, S.DRAFT),
        (S.COMPLETED, S.RUNNING),
        (S.RUNNING, S.RUNNING),
    ],
)
def test_illegal_lifecycle(start: ExperimentStatus, target: ExperimentStatus) -> None:
    g = make(status=start)
    with pytest.raises(ValueError, match=rf"{start}.*{target}"):
        g.set_status(target)
    assert g.status is start


def test_paused_then_resumed_accepts_again() -> None:
    g = make()
    g.set_status(S.PAUSED)
    assert g.submit("a", up(scanXp=11), now=0.0).rejection_code is R.EXPERIMENT_NOT_RUNNING
    g.set_status(S.RUNNING)
    assert g.submit("a", up(scanXp=11), now=0.0).accepted is True


# --- audit log, counts, pickling, determinism --------------------------------------------------


def run_script(g: Guardrails) -> None:
    g.submit("a", up("go big", scanXp=100), now=0.0)
    g.submit("a", up("again", scanXp=100), now=0.5)
    g.submit("control", up("sneaky", scanXp=1), now=0.5)
    g.submit("b", up("bad", scanXp=float("nan")), now=0.6)
    g.check_harm("b", 5, 100, 50, 100, now=1.0)


def test_audit_log_records_every_decision() -> None:
    g = make()
    run_script(g)
    log = g.audit_log
    assert [e.decision_id for e in log] == [f"dec_{i:06d}" for i in range(1, 6)]
    assert [e.kind for e in log] == ["update"] * 4 + ["breaker_trip"]
    assert [e.reasoning for e in log[:4]] == ["go big", "again", "sneaky", "bad"]
    codes = [None, "RATE_LIMITED", "CONTROL_VARIANT_IMMUTABLE", "INVALID_UPDATE"]
    assert [e.rejection_code for e in log[:4]] == codes
    accepted = log[0]
    assert accepted.accepted is True and accepted.variant == "a" and accepted.sim_day == 0.0
    assert accepted.requested == {"scanXp": 100}
    assert accepted.applied is not None and accepted.applied["scanXp"] == 15.0
    assert accepted.clamped_deltas == {
        "scanXp": ClampedDelta(10.0, 100.0, 15.0, 5.0, 50.0).to_api()
    }
    assert log[1].applied is None and log[1].clamped_deltas == {}
    assert log[4].variant == "b" and log[4].applied == dict(DEFAULT_ECONOMY)
    assert [g.audit_since(k) for k in range(7)] == [log[k:] for k in range(7)]


def test_audit_records_are_flat_json() -> None:
    g = make()
    run_script(g)
    records = [e.to_record() for e in g.audit_log]
    text = json.dumps(records, allow_nan=False)
    assert json.loads(text) == records
    assert set(records[0]) == set(AuditEntry.__dataclass_fields__)
    assert json.loads(records[0]["requested"]) == {"scanXp": 100}  # type: ignore[arg-type]
    assert json.loads(records[0]["clamped_deltas"])["scanXp"]["clamped"] is True  # type: ignore[arg-type]
    assert json.loads(records[3]["requested"]) == {"scanXp": "nan"}  # type: ignore[arg-type]
    assert records[1]["applied"] is None


def test_counts() -> None:
    g = make()
    run_script(g)
    a, b, control = g.counts("a"), g.counts("b"), g.counts("control")
    assert (a["submitted"], a["accepted"], a["clamped"], a["rejected"]) == (2, 1, 1, 1)
    assert a["rejected_rate_limited"] == 1 and a["rejected_invalid_update"] == 0
    assert control["rejected_control_variant_immutable"] == 1
    assert (b["rejected_invalid_update"], b["breaker_trips"]) == (1, 1)
    g.counts("a")["accepted"] = 99  # a copy
    assert g.counts("a")["accepted"] == 1


def test_pickle_round_trip_continues_identically() -> None:
    g = make()
    run_script(g)
    clone = pickle.loads(pickle.dumps(g))

    def records(x: Guardrails) -> list[dict[str, object]]:
        return [e.to_record() for e in x.audit_log]  # records: NaN requests compare equal

    assert len(clone.audit_log) == 5 and records(clone) == records(g)
    assert clone.current_config("a") == g.current_config("a")
    assert clone.breaker_active("b") and clone.status is S.RUNNING
    assert clone.submit("a", up(scanXp=100), now=1.0) == g.submit("a", up(scanXp=100), now=1.0)
    assert records(clone) == records(g)


def test_deterministic() -> None:
    first, second = make(), make()
    run_script(first)
    run_script(second)
    assert [e.to_record() for e in first.audit_log] == [e.to_record() for e in second.audit_log]


# --- misuse and configuration -----------------------------------------------------------------


def test_unknown_variant_raises_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        make().submit("nope", up(scanXp=11), now=0.0)


def test_time_must_not_go_backwards() -> None:
    g = make()
    g.submit("a", up(scanXp=11), now=2.0)
    with pytest.raises(ValueError, match="not before day 2"):
        g.submit("b", up(scanXp=11), now=1.0)
    with pytest.raises(ValueError, match="finite"):
        g.tick(float("nan"))


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="control 'ctl'"):
        Guardrails({"control": {}, "a": {}}, control="ctl", knobs=KNOBS)
    with pytest.raises(EconomyError, match="variant 'a'"):
        Guardrails({"control": {}, "a": {"scanXp": -1.0}}, control="control", knobs=KNOBS)
    partial = Guardrails({"control": {}, "a": {"scanXp": 12.0}}, control="control", knobs=KNOBS)
    assert partial.current_config("a") == {**DEFAULT_ECONOMY, "scanXp": 12.0}
    assert partial.variants == ("control", "a")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("update_interval_days", -1.0),
        ("update_interval_days", float("inf")),
        ("delta_limit_pct", 4.0),
        ("delta_limit_pct", 101.0),
        ("breaker_rejection_limit", 0),
        ("breaker_rejection_limit", 2.5),
        ("breaker_cooldown_days", -0.5),
        ("breaker_retention_floor", 1.5),
        ("breaker_alpha", 2.0),
        ("breaker_min_harm", -0.1),
        ("breaker_min_sample", 0),
        ("auto_reset", "yes"),
        ("delta_limit_pct", True),
    ],
)
def test_config_validation_names_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        GuardrailConfig(**{field: value})  # type: ignore[arg-type]


def test_config_defaults_are_valid() -> None:
    cfg = GuardrailConfig()
    assert (cfg.update_interval_days, cfg.delta_limit_pct, cfg.breaker_rejection_limit) == (
        1.0,
        50.0,
        3,
    )
    assert GuardrailConfig(delta_limit_pct=5.0).delta_limit_pct == 5.0
    assert GuardrailConfig(delta_limit_pct=100).delta_limit_pct == 100
