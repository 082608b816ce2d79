"""Scenario plugins: discovery, the protocol every plugin implements, and the errors a user
meets choosing a scenario, its population or an agent that cannot play it."""

from __future__ import annotations

import pytest

from arena_rl.config import ConfigError, compose_config, settings_from
from arena_rl.core.scenario import Scenario
from arena_rl.scenarios import load_population, load_scenario, plugins, scenario_from_dict
from arena_rl.scenarios.specs import SpecError

PROTOCOL = [
    *sorted(name for name in dir(Scenario) if not name.startswith("_")),
    *("name", "days", "decision_interval", "guardrails"),
]
"""Every member of the protocol (properties, methods, and the settings every plugin has)."""

QUICK = ["+agents=[random]", "tournament.days=8", "population.n_users=600", "progress=false"]


def test_both_plugins_are_discovered() -> None:
    assert {"gamification", "pricing"} <= set(plugins())


@pytest.mark.parametrize("name", ["default", "pricing"])
def test_each_plugin_implements_the_whole_protocol(name: str) -> None:
    scenario = load_scenario(name)
    missing = [member for member in PROTOCOL if not hasattr(scenario, member)]
    assert not missing, f"{type(scenario).__name__} lacks {missing}"
    assert scenario.harm_metric in scenario.metrics
    assert set(scenario.objective_metrics) <= set(scenario.metrics)
    assert set(scenario.base_economy()) == set(scenario.knobs.keys)
    for arms in scenario.arm_sets().values():
        for arm in arms.values():
            assert set(arm) <= set(scenario.knobs.keys)
    for keys in scenario.levers().values():
        assert set(keys) <= set(scenario.knobs.keys)
    assert set(scenario.search_box()) <= set(scenario.knobs.keys)
    population = load_population(scenario)
    assert scenario.population_from_dict is not None and population is not None
    model = scenario.model(population, 2, seed=0, n_users=200)
    summaries = model.summarise()
    assert list(summaries) == list(scenario.metrics)
    assert len(model.objective_summary()) == 2
    signals = model.signals(summaries)
    assert len(signals) == 2 and list(signals[0].metrics) == list(scenario.metrics)
    for knob in scenario.knobs.knobs:
        assert knob.name in scenario.describe()


def test_the_pricing_scenario_brings_its_own_customers_through_hydra() -> None:
    settings = settings_from(compose_config(["scenario=pricing", *QUICK]))
    spec = settings.specs[0]
    assert spec.scenario.plugin == "pricing" and spec.population.name == "pricing"
    premium = compose_config(["scenario=pricing", "population=pricing_premium", *QUICK])
    assert settings_from(premium).specs[0].population.name == "pricing_premium"


def test_a_population_of_another_scenario_is_refused_by_name() -> None:
    cfg = compose_config(["scenario=pricing", "population=casual", *QUICK])
    with pytest.raises(SpecError, match="population of the 'gamification' scenario"):
        settings_from(cfg)


def test_unknown_scenarios_are_refused_with_the_choices() -> None:
    with pytest.raises(SpecError, match=r"unknown scenario 'nope'; available: default, pricing"):
        load_scenario("nope")
    with pytest.raises(SpecError, match=r"unknown scenario 'my\.Economy'; plugins: gamification"):
        scenario_from_dict({"_target_": "my.Economy"}, "scenario")


def test_an_agent_that_cannot_play_the_scenario_is_refused_before_any_work() -> None:
    cfg = compose_config(["scenario=pricing", "+agents=[ppo]", "tournament.days=8"])
    with pytest.raises(ConfigError, match=r"agents.ppo: agent 'ppo' \(PPOAgent\) plays only"):
        settings_from(cfg)
