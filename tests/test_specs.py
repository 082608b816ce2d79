"""Tests for presets (arena_rl.scenarios.gamification.specs): they load, and every mistake is
caught with a message that says which file, segment and field is wrong."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_rl.scenarios import load_scenario, scenario_from_dict
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, EconomyError
from arena_rl.scenarios.gamification.specs import (
    TRAITS,
    Behaviour,
    GamificationScenario,
    Objective,
    PopulationSpec,
    load_population,
    population_from_dict,
)
from arena_rl.scenarios.specs import CONF_DIR, SpecError

PRESETS = ("default", "farmers", "casual")


def _default_data() -> dict[str, Any]:
    return yaml.safe_load((CONF_DIR / "population" / "default.yaml").read_text())


def _write(tmp_path: Path, data: object, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _load_error(tmp_path: Path, data: dict[str, Any]) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_population(path)
    message = str(info.value)
    assert str(path) in message, f"the message does not name the file: {message}"
    return message


# --- presets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_is_consistent(name: str) -> None:
    spec = load_population(name)
    assert isinstance(spec, PopulationSpec)
    assert spec.name == name
    assert math.isclose(sum(s.share for s in spec.segments), 1.0, abs_tol=1e-9)
    assert {s.name for s in spec.segments} == {
        "achiever",
        "socialiser",
        "casual",
        "explorer",
        "farmer",
    }
    assert spec.n_users >= 2
    assert 0 < spec.initial_share <= 1
    assert spec.behaviour == Behaviour()


def test_presets_are_dominated_by_their_segment() -> None:
    shares = {name: {s.name: s.share for s in load_population(name).segments} for name in PRESETS}
    assert shares["farmers"]["farmer"] == max(shares["farmers"].values())
    assert shares["farmers"]["farmer"] >= 0.4
    assert shares["casual"]["casual"] == max(shares["casual"].values())
    assert shares["casual"]["casual"] >= 0.5
    assert shares["default"]["farmer"] < shares["farmers"]["farmer"]
    assert shares["default"]["casual"] < shares["casual"]["casual"]


@pytest.mark.parametrize("name", ["farmers", "casual"])
def test_presets_change_only_shares(name: str) -> None:
    default = {s.name: s for s in load_population("default").segments}
    for segment in load_population(name).segments:
        for trait in TRAITS:
            assert getattr(segment, trait) == getattr(default[segment.name], trait)


def test_distribution_kinds_are_parsed() -> None:
    achiever = next(s for s in load_population("default").segments if s.name == "achiever")
    assert (achiever.base_activity.kind, achiever.base_activity.a) == ("normal", -1.2)
    assert achiever.base_activity.b == 0.7
    assert (achiever.scan_rate.kind, achiever.scan_rate.a) == ("lognormal", 3.5)
    assert (achiever.feedback_quality.kind, achiever.feedback_quality.median()) == ("beta", 6 / 9)
    assert (achiever.loss_aversion.kind, achiever.loss_aversion.a) == ("constant", 2.25)
    # the lower bound of a trait travels with its distribution: scan_rate >= 1 scan a day
    assert achiever.scan_rate.lower == 1.0


def test_load_by_path_equals_load_by_name(tmp_path: Path) -> None:
    path = _write(tmp_path, _default_data(), "copy.yaml")
    assert load_population(path) == load_population("default")


def test_unknown_preset_lists_available_ones() -> None:
    with pytest.raises(SpecError, match="unknown population 'nope'") as info:
        load_population("nope")
    for name in PRESETS:
        assert name in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found") as info:
        load_population(tmp_path / "absent.yaml")
    assert "absent.yaml" in str(info.value)


# --- population errors: each names the file, the segment and the field -----------------------


def test_missing_trait(tmp_path: Path) -> None:
    data = _default_data()
    del data["segments"]["explorer"]["crowding"]
    message = _load_error(tmp_path, data)
    assert "'explorer'" in message and "crowding" in message and "missing" in message


def test_unknown_trait(tmp_path: Path) -> None:
    data = _default_data()
    data["segments"]["casual"]["patience"] = 0.5
    message = _load_error(tmp_path, data)
    assert "'casual'" in message and "patience" in message and "unknown" in message


@pytest.mark.parametrize(
    "value",
    [{"mean": 1.0}, {"mean": 1.0, "sd": 0.2, "extra": 1}, {"median": 3.0, "sd": 0.2}, {"a": 2}],
)
def test_bad_distribution_keys(tmp_path: Path, value: dict[str, float]) -> None:
    data = _default_data()
    data["segments"]["achiever"]["habit"] = value
    message = _load_error(tmp_path, data)
    assert "'achiever'" in message and "'habit'" in message and "distribution" in message


@pytest.mark.parametrize(
    ("trait", "value"),
    [("base_activity", {"mean": -1.0, "sd": -0.1}), ("scan_rate", {"median": 3.0, "sd_log": -1})],
)
def test_negative_spread(tmp_path: Path, trait: str, value: dict[str, float]) -> None:
    data = _default_data()
    data["segments"]["socialiser"][trait] = value
    message = _load_error(tmp_path, data)
    assert "'socialiser'" in message and repr(trait) in message and ">= 0" in message


def test_beta_on_a_trait_outside_unit_interval(tmp_path: Path) -> None:
    data = _default_data()
    data["segments"]["farmer"]["habit"] = {"a": 2, "b": 3}  # habit is not a share
    message = _load_error(tmp_path, data)
    assert "'farmer'" in message and "'habit'" in message and "[0, 1]" in message


def test_beta_with_non_positive_shape(tmp_path: Path) -> None:
    data = _default_data()
    data["segments"]["farmer"]["feedback_quality"] = {"a": 0, "b": 3}
    message = _load_error(tmp_path, data)
    assert "'farmer'" in message and "'feedback_quality'" in message and "> 0" in message


def test_value_outside_trait_range(tmp_path: Path) -> None:
    data = _default_data()
    data["segments"]["casual"]["churn_hazard"] = 1.5  # a daily probability
    message = _load_error(tmp_path, data)
    assert "'casual'" in message and "'churn_hazard'" in message and "outside" in message


def test_shares_not_summing_to_one(tmp_path: Path) -> None:
    data = _default_data()
    data["segments"]["achiever"]["share"] = 0.3  # total 1.05
    message = _load_error(tmp_path, data)
    assert "shares must sum to 1" in message and "1.05" in message


def test_share_out_of_range(tmp_path: Path) -> None:
    data = _default_data()
    data["segments"]["achiever"]["share"] = 0.0
    message = _load_error(tmp_path, data)
    assert "'achiever'" in message and "'share'" in message


@pytest.mark.parametrize(
    ("value", "field"),
    [("lots", "'scan_value'"), (True, "'scan_value'"), ({"mean": "high", "sd": 1}, ".mean")],
)
def test_non_numeric_value(tmp_path: Path, value: object, field: str) -> None:
    data = _default_data()
    data["segments"]["explorer"]["scan_value"] = value
    message = _load_error(tmp_path, data)
    assert "'explorer'" in message and "scan_value" in message and field in message
    assert "expected a number" in message


def test_nan_value(tmp_path: Path) -> None:
    path = tmp_path / "nan.yaml"
    text = (CONF_DIR / "population" / "default.yaml").read_text()
    path.write_text(text.replace("crowding: 0.6", "crowding: .nan", 1))
    with pytest.raises(SpecError, match="finite") as info:
        load_population(path)
    assert str(path) in str(info.value) and "'explorer'" in str(info.value)


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "malformed.yaml"
    path.write_text("name: x\nsegments:\n  achiever: {share: 0.5\n  casual: [\n")
    with pytest.raises(SpecError, match="not valid YAML") as info:
        load_population(path)
    assert str(path) in str(info.value)


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, ["a", "list"])
    with pytest.raises(SpecError, match="mapping") as info:
        load_population(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("n_users", 1, "'n_users'"),
        ("n_users", 10.5, "'n_users'"),
        ("initial_share", 0, "'initial_share'"),
        ("enrol_days", -1, "'enrol_days'"),
        ("colour", "blue", "colour"),
        ("behaviour", {"xp_scale": -1.0}, "xp_scale"),
        ("behaviour", {"xp_scael": 60.0}, "xp_scael"),
        ("assignment", "random", "'assignment'"),
    ],
)
def test_top_level_field_errors(tmp_path: Path, key: str, value: object, needle: str) -> None:
    data = _default_data()
    data[key] = value
    assert needle in _load_error(tmp_path, data)


def test_assignment_modes() -> None:
    data = _default_data()
    assert population_from_dict(data).assignment == "complete"  # the default
    data["assignment"] = "stratified"
    assert population_from_dict(data).assignment == "stratified"


def test_population_from_dict_does_not_mutate_input() -> None:
    data = _default_data()
    before = copy.deepcopy(data)
    population_from_dict(data)
    assert data == before


# --- scenarios --------------------------------------------------------------------------------


def test_default_scenario() -> None:
    scenario = load_scenario("default")
    assert isinstance(scenario, GamificationScenario)
    assert (scenario.days, scenario.decision_interval, scenario.interference) == (28, 1, 0.0)
    assert scenario.objective == Objective()
    assert scenario.base_economy() == dict(DEFAULT_ECONOMY)


def test_scenario_economy_overrides_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "tenant", "economy": {"scanXp": 12, "scanDailyCap": 30}})
    economy = load_scenario(path).base_economy()
    assert economy == {**DEFAULT_ECONOMY, "scanXp": 12.0, "scanDailyCap": 30.0}


def test_unknown_scenario_lists_available_ones() -> None:
    with pytest.raises(SpecError, match=r"unknown scenario 'nope'.*default"):
        load_scenario("nope")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"horizon": 10}, "horizon"),
        ({"days": 0}, "'days'"),
        ({"days": 7.5}, "'days'"),
        ({"days": True}, "'days'"),
        ({"decision_interval": 0}, "'decision_interval'"),
        ({"interference": -0.5}, "'interference'"),
        ({"interference": "high"}, "'interference'"),
        ({"objective": {"xp_cost": -0.01}}, "xp_cost"),
        ({"objective": {"xp_costs": 0.01}}, "xp_costs"),
    ],
)
def test_scenario_errors_name_file_and_field(
    tmp_path: Path, data: dict[str, Any], needle: str
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and needle in str(info.value)


@pytest.mark.parametrize(
    ("economy", "key"),
    [
        ({"scanXp": -1}, "scanXp"),
        ({"scanDailyCap": 20.5}, "scanDailyCap"),
        ({"bonusXp": 5}, "bonusXp"),
        ({"feedbackXp": "lots"}, "feedbackXp"),
    ],
)
def test_scenario_bad_economy_names_the_key(
    tmp_path: Path, economy: dict[str, Any], key: str
) -> None:
    path = _write(tmp_path, {"name": "tenant", "economy": economy})
    with pytest.raises((EconomyError, SpecError)) as info:
        load_scenario(path)
    assert key in str(info.value) and "tenant" in str(info.value)


def test_scenario_from_dict_round_trip() -> None:
    scenario = scenario_from_dict({"name": "s", "days": 7, "interference": 1.5}, "<test>")
    assert (scenario.name, scenario.days, scenario.interference) == ("s", 7, 1.5)


# --- scenario economy and behaviour constants -------------------------------------------------


@pytest.mark.parametrize("economy", [[1, 2], "scanXp"])
def test_scenario_economy_must_be_a_mapping(tmp_path: Path, economy: object) -> None:
    path = _write(tmp_path, {"name": "tenant", "economy": economy})
    with pytest.raises(SpecError, match="economy") as info:
        load_scenario(path)
    assert str(path) in str(info.value)


def test_scenario_bad_economy_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "tenant", "economy": {"scanXp": -1}})
    with pytest.raises((EconomyError, SpecError)) as info:
        load_scenario(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "key", ["xp_scale", "novelty_halflife_days", "habituation_halflife_days", "habit_days"]
)
def test_behaviour_divisors_must_be_positive(tmp_path: Path, key: str) -> None:
    data = _default_data()
    data["behaviour"] = {key: 0}
    assert key in _load_error(tmp_path, data)
