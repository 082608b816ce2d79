"""Population priors: seeded draws inside their documented ranges, bad priors refused by field
before any work, and `population=prior` giving each tournament a population of its own."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import pytest

from arena_rl.config import compose_config, settings_from
from arena_rl.scenarios.gamification.specs import load_population, population_from_dict
from arena_rl.scenarios.prior import PopulationPrior
from arena_rl.scenarios.specs import CONF_DIR, SpecError, read_yaml

PRIOR = read_yaml(CONF_DIR / "population" / "prior.yaml")


def prior(**changes: Any) -> PopulationPrior:
    data = copy.deepcopy(PRIOR)
    data["prior"].update(changes)
    made = population_from_dict(data, "prior")
    assert isinstance(made, PopulationPrior)
    return made


def test_draws_are_seeded_and_stay_inside_the_ranges() -> None:
    p, base = prior(), load_population("default")
    draws = [p.draw(seed, k) for k, seed in enumerate(range(30))]
    assert p.draw(3, 3) == draws[3]  # the same seed, the same population
    assert len({repr(d) for d in draws}) == 30
    for d in draws:
        assert math.isclose(sum(s.share for s in d.segments), 1.0)
        farmer = next(s for s in d.segments if s.name == "farmer")
        assert 0.0 <= farmer.share <= 0.25
        for key, (low, high) in p.behaviour.items():
            assert low <= getattr(d.behaviour, key) <= high, key
        for drawn, original in zip(d.segments, base.segments, strict=True):
            for trait, (low, high) in p.factors.items():
                was, now = getattr(original, trait), getattr(drawn, trait)
                if was.kind == "beta":
                    continue  # a beta's mean moves, clipped to (0.01, 0.99)
                if was.a == 0:
                    assert now.a == 0  # a scale of nothing stays nothing
                    continue
                ratio = now.a / was.a
                assert now.a == now.upper or now.a == now.lower or low <= ratio <= high * 1.0001
            shift = drawn.base_activity.a - original.base_activity.a
            assert -0.6 <= shift <= 0.6
    factors = [d.behaviour.xp_scale for d in draws]
    assert min(factors) < 80 and max(factors) > 115  # the range (60-135) is used, not its middle


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"factors": {"habit": [2.0, 0.5]}}, r"prior.factors.habit: inverted range"),
        ({"factors": {"habit": [-1.0, 2.0]}}, r"prior.factors.habit: a factor range must be > 0"),
        ({"factors": {"charisma": [0.5, 2.0]}}, r"prior.factors: unknown name\(s\) \['charisma'\]"),
        ({"behaviour": {"xp_scale": [0.0, 90]}}, r"prior.behaviour.xp_scale: must be > 0"),
        ({"behaviour": {"novelty_gain": [-1, 2]}}, r"prior.behaviour.novelty_gain: must be >= 0"),
        ({"shares": {"farmer": [0.2, 1.2]}}, r"prior.shares.farmer: must lie in \[0, 1\)"),
        (
            {"shares": {"farmer": [0.0, 0.6], "casual": [0.1, 0.5]}},
            r"prior.shares: the named segments' shares can reach 1.1",
        ),
        ({"concentration": 0}, r"prior.concentration: must be > 0"),
        ({"shifts": {"base_activity": [1.0, "x"]}}, r"prior.shifts.base_activity"),
        ({"base": "nonexistent"}, r"nonexistent"),
    ],
)
def test_a_bad_prior_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        prior(**change)


def test_a_prior_is_not_a_preset() -> None:
    with pytest.raises(SpecError, match="a prior over populations"):
        load_population("prior")


QUICK = ["+agents=[random]", "tournament.days=3", "population.n_users=600", "progress=false"]


def test_population_prior_gives_each_tournament_its_own_population() -> None:
    overrides = [*QUICK, "population=prior", "tournament.n_tournaments=3", "seed=5"]
    settings = settings_from(compose_config(overrides))
    populations = [s.population for s in settings.specs]
    assert [p.name for p in populations] == ["prior/0", "prior/1", "prior/2"]
    assert len({repr(p) for p in populations}) == 3
    assert all(p.n_users == 600 for p in populations)
    values = [s.plan_value for s in settings.specs]
    assert len(set(values)) == 3  # a ground truth per population
    again = settings_from(compose_config(overrides))
    assert [s.population for s in again.specs] == populations
    assert [s.seed for s in again.specs] == [s.seed for s in settings.specs]
    preset = settings_from(compose_config([*QUICK, "tournament.n_tournaments=3", "seed=5"]))
    assert [s.seed for s in preset.specs] == [s.seed for s in settings.specs]  # seeds unchanged


def test_round_robin_pairings_of_a_tournament_share_its_population() -> None:
    overrides = ["+agents=[random,control]", "tournament.days=3", "population.n_users=600",
                 "progress=false", "population=prior", "tournament.n_tournaments=2",
                 "tournament.format=round_robin"]  # fmt: skip
    specs = settings_from(compose_config(overrides)).specs
    assert [s.population.name for s in specs] == ["prior/0", "prior/1"]
    bigger = ["+agents=[random,control,ucb]", *overrides[1:]]
    specs = settings_from(compose_config(bigger)).specs
    assert [s.population.name for s in specs] == ["prior/0"] * 3 + ["prior/1"] * 3


def test_draw_is_a_plain_preset_dataclass() -> None:
    drawn = prior().draw(0)
    assert dataclasses.is_dataclass(drawn) and drawn.name == "prior/0"
    assert all(isinstance(s.share, float) for s in drawn.segments)
