"""Tests for the XP economy (arena_rl.scenarios.gamification.economy): defaults, the
resolution chain, validation, caps and arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arena_rl.scenarios.gamification.economy import (
    DEFAULT_ECONOMY,
    ECONOMY_KEYS,
    INTEGER_KEYS,
    EconomyError,
    economy_array,
    resolve_economy,
    round_caps,
    validate_overrides,
)

LIVE_DEFAULTS = {
    "scanXp": 10,
    "feedbackXp": 15,
    "issueReportXp": 25,
    "statusReportXp": 20,
    "photoXp": 10,
    "firstScanOfDayXp": 15,
    "streakBonusPerDay": 5,
    "streakBonusCap": 50,
    "scanDailyCap": 20,
    "feedbackDailyCap": 10,
}
"""The live platform's defaults."""


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_are_the_ten_live_values() -> None:
    assert dict(DEFAULT_ECONOMY) == LIVE_DEFAULTS
    assert len(DEFAULT_ECONOMY) == 10
    assert all(isinstance(v, float) for v in DEFAULT_ECONOMY.values())


def test_key_order_and_integer_keys() -> None:
    assert tuple(LIVE_DEFAULTS) == ECONOMY_KEYS
    assert frozenset({"streakBonusCap", "scanDailyCap", "feedbackDailyCap"}) == INTEGER_KEYS


def test_defaults_are_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT_ECONOMY["scanXp"] = 99.0  # type: ignore[index]
    assert DEFAULT_ECONOMY["scanXp"] == 10.0


# --- resolution chain -------------------------------------------------------------------------


def test_resolve_without_layers_is_the_defaults() -> None:
    economy = resolve_economy()
    assert economy == dict(DEFAULT_ECONOMY)
    economy["scanXp"] = 1.0  # the result is a fresh dict: mutating it leaves the defaults alone
    assert DEFAULT_ECONOMY["scanXp"] == 10.0


def test_resolve_chain_later_layers_win() -> None:
    scenario = {"scanXp": 12, "feedbackXp": 18}
    variant = {"scanXp": 14, "scanDailyCap": 25}
    economy = resolve_economy(scenario, variant)
    assert set(economy) == set(ECONOMY_KEYS)
    assert economy["scanXp"] == 14.0  # variant beats scenario
    assert economy["feedbackXp"] == 18.0  # scenario beats defaults
    assert economy["scanDailyCap"] == 25.0  # variant beats defaults
    assert economy["photoXp"] == 10.0  # untouched keys keep the default
    assert all(isinstance(v, float) for v in economy.values())


def test_resolve_skips_empty_and_none_layers() -> None:
    assert resolve_economy(None, {}, {"photoXp": 3}, None) == {**DEFAULT_ECONOMY, "photoXp": 3.0}


def test_resolve_names_the_failing_layer() -> None:
    with pytest.raises(EconomyError, match=r"variant B \(layer 2\).*scanXp"):
        resolve_economy({"feedbackXp": 5}, {"scanXp": -1}, where="variant B")


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("scanXP", 10, "unknown key"),
        ("scanXp", math.nan, "finite"),
        ("feedbackXp", math.inf, "finite"),
        ("photoXp", -math.inf, "finite"),
        ("issueReportXp", -1, "at least 0"),
        ("statusReportXp", "20", "must be a number"),
        ("photoXp", True, "must be a number"),
        ("streakBonusPerDay", None, "must be a number"),
        ("scanDailyCap", 20.5, "whole number"),
        ("feedbackDailyCap", np.float64(2.5), "whole number"),
        ("streakBonusCap", 49.9, "whole number"),
    ],
)
def test_validate_rejects_and_names_the_key(key: str, value: object, reason: str) -> None:
    with pytest.raises(EconomyError, match=reason) as info:
        validate_overrides({key: value}, where="agent ucb")
    message = str(info.value)
    assert key in message
    assert message.startswith("agent ucb")


def test_validate_error_is_a_value_error() -> None:
    assert issubclass(EconomyError, ValueError)


def test_validate_rejects_a_non_mapping() -> None:
    with pytest.raises(EconomyError, match="mapping"):
        validate_overrides([("scanXp", 10)])  # type: ignore[arg-type]


def test_validate_accepts_numbers_and_returns_floats() -> None:
    clean = validate_overrides(
        {"scanXp": 12, "feedbackXp": np.float32(7.5), "scanDailyCap": np.int64(30), "photoXp": 0}
    )
    assert clean == {"scanXp": 12.0, "feedbackXp": 7.5, "scanDailyCap": 30.0, "photoXp": 0.0}
    assert all(type(v) is float for v in clean.values())


def test_validate_accepts_whole_float_caps() -> None:
    assert validate_overrides({"scanDailyCap": 20.0}) == {"scanDailyCap": 20.0}


def test_validate_rejects_numpy_bool() -> None:
    with pytest.raises(EconomyError, match="photoXp"):
        validate_overrides({"photoXp": np.True_})


# --- caps and arrays --------------------------------------------------------------------------


def test_round_caps_rounds_only_caps_half_to_even() -> None:
    economy = {**DEFAULT_ECONOMY, "scanXp": 10.5, "scanDailyCap": 20.5, "feedbackDailyCap": 11.5}
    economy["streakBonusCap"] = 49.6
    rounded = round_caps(economy)
    assert rounded["scanXp"] == 10.5  # not a cap: unchanged
    assert rounded["scanDailyCap"] == 20.0  # half to even
    assert rounded["feedbackDailyCap"] == 12.0  # half to even
    assert rounded["streakBonusCap"] == 50.0
    assert set(rounded) == set(economy)
    assert economy["scanDailyCap"] == 20.5  # the input is not modified


def test_economy_array_follows_key_order() -> None:
    reversed_default = {k: DEFAULT_ECONOMY[k] for k in reversed(ECONOMY_KEYS)}
    custom = {**DEFAULT_ECONOMY, "scanXp": 1.0, "feedbackDailyCap": 3.0}
    table = economy_array([reversed_default, custom])
    assert table.shape == (2, 10)
    assert table.dtype == np.float64
    np.testing.assert_array_equal(table[0], [LIVE_DEFAULTS[k] for k in ECONOMY_KEYS])
    assert table[1, ECONOMY_KEYS.index("scanXp")] == 1.0
    assert table[1, -1] == 3.0  # feedbackDailyCap is the last column
    assert table[1, 0] == 1.0  # scanXp is the first column


def test_economy_array_needs_every_key() -> None:
    partial = {k: v for k, v in DEFAULT_ECONOMY.items() if k != "photoXp"}
    with pytest.raises(KeyError, match="photoXp"):
        economy_array([partial])
