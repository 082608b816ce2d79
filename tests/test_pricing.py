"""The pricing scenario plugin: knobs, presets and scenario validation, determinism, twins,
the behavioural mechanisms (statistical, on twins populations large enough that each stated
tolerance is several standard errors wide), signals and the objective.

Every test runs in well under five seconds on one core.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from arena_rl.core.knobs import KnobError
from arena_rl.core.scenario import DayOutcome
from arena_rl.scenarios.pricing import SCENARIO, PricingPopulation, PricingScenario
from arena_rl.scenarios.pricing.knobs import KNOBS
from arena_rl.scenarios.pricing.metrics import METRICS
from arena_rl.scenarios.pricing.population import ANNUAL, MONTH_DAYS, Customers
from arena_rl.scenarios.pricing.specs import load_population, population_from_dict
from arena_rl.scenarios.specs import CONF_DIR, SpecError, read_yaml

SC = PricingScenario()
POP = load_population("pricing")
BASE = SC.base_economy()


def _preset() -> dict[str, Any]:
    """The default preset as a fresh, editable mapping."""
    data: dict[str, Any] = yaml.safe_load((CONF_DIR / "population" / "pricing.yaml").read_text())
    return data


def _run(
    offers: Sequence[Mapping[str, float]],
    *,
    n: int = 20_000,
    seed: int = 0,
    days: int | None = None,
    twins: bool = True,
    pop: PricingPopulation = POP,
) -> tuple[Customers, list[DayOutcome]]:
    """A model with one arm per offer (twins by default), stepped over the horizon."""
    model = SC.model(pop, len(offers), seed, n_users=n * len(offers), twins=twins)
    assert isinstance(model, Customers)
    table = SC.knobs.array([{**BASE, **o} for o in offers])
    outcomes = [model.step(table) for _ in range(days or SC.days)]
    return model, outcomes


def _mean_value(outcomes: list[DayOutcome]) -> np.ndarray:
    """(n_arms,) objective per arrived prospect per day, averaged over the days."""
    return np.mean([o.value for o in outcomes], axis=0)


# ---- plugin, knobs and validation ----------------------------------------------------------------


def test_plugin_implements_the_scenario_protocol() -> None:
    assert SCENARIO is PricingScenario
    for name in ("plugin", "knobs", "metrics", "harm_metric", "base_economy",
                 "population_from_dict", "load_population", "model", "isolated",
                 "estimate_objective", "arm_sets", "levers", "describe", "search_box",
                 "name", "days", "decision_interval", "guardrails"):  # fmt: skip
        assert hasattr(SC, name), name
    assert SC.plugin == "pricing" and SC.name == "pricing"
    assert SC.harm_metric in SC.metrics and SC.metrics == METRICS
    assert SC.search_box() == {}
    assert SC.isolated() == SC
    for arms in SC.arm_sets().values():
        for arm in arms.values():
            assert set(arm) <= set(KNOBS.keys)
    for keys in SC.levers().values():
        assert set(keys) <= set(KNOBS.keys)
    text = SC.describe()
    assert all(k in text for k in KNOBS.keys) and all(m in text for m in METRICS)


def test_knobs_have_units_descriptions_and_sane_bounds() -> None:
    assert KNOBS.keys == (
        "monthly_price", "annual_discount", "trial_days", "intro_discount", "intro_months"
    )  # fmt: skip
    assert KNOBS.integer == {"trial_days", "intro_months"}
    for knob in KNOBS.knobs:
        assert knob.unit and knob.description, knob.name
        assert knob.low < knob.default < knob.high, knob.name


@pytest.mark.parametrize(
    ("economy", "message"),
    [
        ({"monthly_price": 100}, "monthly_price must be at most 40"),
        ({"annual_discount": -0.1}, "annual_discount must be at least 0"),
        ({"trial_days": 3.5}, "trial_days must be a whole number"),
        ({"price": 10}, "unknown key 'price'"),
        ({"intro_months": "two"}, "intro_months must be a number"),
    ],
)
def test_knob_validation_names_the_knob(economy: dict[str, Any], message: str) -> None:
    with pytest.raises(KnobError, match=message):
        KNOBS.validate(economy)
    with pytest.raises(SpecError, match=rf"tenant.yaml, field 'economy'.*{message}"):
        PricingScenario.from_dict({"economy": economy}, "tenant.yaml")


def test_scenario_from_dict_and_its_errors() -> None:
    scenario = PricingScenario.from_dict(
        {"name": "acme", "days": 90, "economy": {"monthly_price": 19}}, "acme.yaml"
    )
    assert scenario.days == 90 and scenario.base_economy()["monthly_price"] == 19.0
    assert scenario.base_economy()["trial_days"] == KNOBS.defaults["trial_days"]
    with pytest.raises(SpecError, match=r"x.yaml: unknown field\(s\) \['objective'\]"):
        PricingScenario.from_dict({"objective": {}}, "x.yaml")
    with pytest.raises(SpecError, match=r"x.yaml, field 'days': must be an integer >= 1"):
        PricingScenario.from_dict({"days": 0}, "x.yaml")
    with pytest.raises(SpecError, match=r"x.yaml, field 'economy': expected a mapping"):
        PricingScenario.from_dict({"economy": [1, 2]}, "x.yaml")


def test_scenario_config_file_loads() -> None:
    data = read_yaml(CONF_DIR / "scenario" / "pricing.yaml")
    assert data["_target_"] == "arena_rl.scenarios.pricing.PricingScenario"
    # its schema, and its own customers unless the command line names another preset
    population = {"override /population@_global_.population": "pricing"}
    schema = {"/scenario_schema@_here_": "pricing"}
    assert data["defaults"] == [schema, population, "_self_"]
    fields = {k: v for k, v in data.items() if k not in ("_target_", "defaults")}
    assert PricingScenario.from_dict(fields, "pricing.yaml") == PricingScenario()


@pytest.mark.parametrize("name", ["pricing", "pricing_premium"])
def test_presets_load(name: str) -> None:
    pop = load_population(name)
    assert math.isclose(sum(s.share for s in pop.segments), 1.0)
    assert SC.load_population(name) == pop


def _edit(change: Any) -> dict[str, Any]:
    data = _preset()
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["segments"]["students"].update(share=0.5), "shares must sum to 1, got 1.15"),
        (lambda d: d["segments"]["teams"].update(share=0), "segment 'teams', field 'share'"),
        (lambda d: d["segments"]["teams"].update(charm=1), r"'teams': unknown field.*charm"),
        (lambda d: d["segments"]["teams"].pop("wtp"), r"segment 'teams': missing field.*'wtp'"),
        (lambda d: d["segments"]["teams"].update(loss_aversion=0.5),
         "field 'loss_aversion': value 0.5 outside the allowed range"),
        (lambda d: d.update(colour="blue"), r"unknown field\(s\) \['colour'\]"),
        (lambda d: d.update(scenario="gamification"), "a population of the 'gamification'"),
        (lambda d: d.update(arrival_days=-1), "field 'arrival_days': must be an integer >= 0"),
        (lambda d: d.update(behaviour={"judge_months": 0}), "judge_months: must be > 0"),
        (lambda d: d.update(behaviour={"nerve": 1}), r"behaviour: unknown field.*nerve"),
        (lambda d: d.update(assignment="random"), "field 'assignment'"),
    ],
)  # fmt: skip
def test_preset_errors_name_the_problem(change: Any, message: str) -> None:
    with pytest.raises(SpecError, match=rf"p.yaml.*{message}"):
        population_from_dict(_edit(change), "p.yaml")


def test_a_gamification_preset_is_rejected_as_such() -> None:
    # whether or not gamification's presets name their plugin, the error says what is wrong
    with pytest.raises(SpecError, match=r"not a pricing preset|population of the 'gamification'"):
        SC.load_population("default")
    data = read_yaml(CONF_DIR / "population" / "default.yaml")
    with pytest.raises(SpecError, match="a population of the 'gamification' scenario"):
        SC.population_from_dict({**data, "scenario": "gamification"}, "default.yaml")


def test_model_rejects_a_wrong_economy_table() -> None:
    model = SC.model(POP, 2, 0, n_users=100)
    with pytest.raises(ValueError, match=r"economies must have shape \(2, 5\)"):
        model.step(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="n_users=1 is too few"):
        SC.model(POP, 2, 0, n_users=1)


# ---- determinism and twins -----------------------------------------------------------------------


def _fingerprint(model: Customers, outcomes: list[DayOutcome]) -> list[np.ndarray]:
    return [
        np.array([o.value for o in outcomes]),
        model.status.copy(),
        model.rate.copy(),
        model.reference.copy(),
    ]


def test_same_seed_same_run_different_seed_different_run() -> None:
    offers = [{}, {"monthly_price": 25.0}]
    a = _fingerprint(*_run(offers, n=3000, seed=7, days=80, twins=False))
    b = _fingerprint(*_run(offers, n=3000, seed=7, days=80, twins=False))
    c = _fingerprint(*_run(offers, n=3000, seed=8, days=80, twins=False))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


def test_twins_give_identical_arms_under_identical_offers() -> None:
    offer = {"monthly_price": 18.0, "trial_days": 10.0}
    model, outcomes = _run([offer] * 3, n=4000, days=100)
    for arr in (model.status, model.rate, model.reference, model.next_event, model.alive):
        assert (arr == arr[:1]).all()
    for o in outcomes:
        assert (o.value == o.value[0]).all() and (o.totals["cash"] == o.totals["cash"][0]).all()
    # different offers on the same prospects: the arrivals and traits are shared, outcomes not
    model, outcomes = _run([{}, {"monthly_price": 30.0}], n=4000, days=100)
    assert (model.arrival == model.arrival[:1]).all()
    assert outcomes[-1].value[0] != outcomes[-1].value[1]


def test_independent_arms_hold_different_prospects() -> None:
    model, _ = _run([{}, {}], n=4000, days=30, twins=False)
    assert not np.array_equal(model.traits["wtp"][0], model.traits["wtp"][1])
    assert not np.array_equal(model.status[0], model.status[1])


# ---- behaviour -----------------------------------------------------------------------------------


def _rate(model: Customers, metric: str) -> np.ndarray:
    return np.array([s.to_metric().value for s in model.summarise()[metric]])


def test_higher_price_lowers_trial_starts_and_conversion() -> None:
    model, _ = _run([{"monthly_price": 10.0}, {"monthly_price": 25.0}], n=20_000, days=90)
    start, conversion = _rate(model, "TRIAL_START_RATE"), _rate(model, "CONVERSION_RATE")
    # standard errors are below 0.005 for start and 0.007 for conversion
    assert start[0] - start[1] > 0.04
    assert conversion[0] - conversion[1] > 0.05


def _renewal_churn(pop: PricingPopulation) -> np.ndarray:
    """Churn per renewal over the 30 days after day 60, for an arm whose price rises from 15 to
    20 on day 60 and an arm at 20 from the start (same prospects)."""
    model = SC.model(pop, 2, 0, n_users=60_000, twins=True)
    cheap, dear = {**BASE, "monthly_price": 15.0}, {**BASE, "monthly_price": 20.0}
    before, after = SC.knobs.array([cheap, dear]), SC.knobs.array([dear, dear])
    churned, renewed = np.zeros(2), np.zeros(2)
    for day in range(90):
        outcome = model.step(before if day < 60 else after)
        if day >= 60:
            churned += outcome.totals["churned"]
            renewed += outcome.totals["renewals"]
    assert (churned + renewed).min() > 1500  # renewals due: standard errors under 1 point
    return churned / (churned + renewed)


def test_a_price_rise_on_subscribers_churns_more_than_the_same_price_from_the_start() -> None:
    raised, from_start = _renewal_churn(POP)
    assert raised - from_start > 0.05
    # without the loss term only selection is left (the cheap arm's subscribers value the
    # product less): the gap is less than half as large, so loss aversion carries most of it
    no_loss = dataclasses.replace(POP.behaviour, loss_churn=0.0)
    raised0, from_start0 = _renewal_churn(dataclasses.replace(POP, behaviour=no_loss))
    assert raised - from_start > 2 * (raised0 - from_start0)


def test_longer_trials_convert_better_with_diminishing_returns() -> None:
    model, _ = _run([{"trial_days": t} for t in (3.0, 7.0, 11.0)], n=30_000, days=80)
    conversion = _rate(model, "CONVERSION_RATE")
    # about 13 000 ended trials per arm: standard errors under 0.005
    first, second = conversion[1] - conversion[0], conversion[2] - conversion[1]
    assert first > 0.04 and second > 0.0
    assert first > second + 0.02


def test_revenue_has_an_interior_optimum_in_monthly_price() -> None:
    prices = (5.0, 10.0, 15.0, 21.0, 28.0, 40.0)
    _, outcomes = _run([{"monthly_price": p} for p in prices], n=20_000)
    value = _mean_value(outcomes)
    best = int(np.argmax(value))
    assert 0 < best < len(prices) - 1, dict(zip(prices, value, strict=True))
    assert value[best] > 1.05 * max(value[0], value[-1])
    # the default offer is decent, not optimal: a dearer price earns more (twins: no noise
    # from the prospects, only from their decisions)
    assert value[prices.index(21.0)] > value[prices.index(15.0)]


def test_annual_subscribers_never_churn_within_their_year() -> None:
    model, _ = _run([{"annual_discount": 0.4}], n=20_000)
    annual = model.status == ANNUAL
    assert annual.sum() == model.counts["annual_first"][0] > 1000


def test_revenue_is_accrued_cash_less_what_is_not_yet_earned() -> None:
    model, outcomes = _run([{}, {"annual_discount": 0.3, "trial_days": 0.0}], n=5000)
    recognised = np.sum([o.totals["revenue"] for o in outcomes], axis=0)
    t = model.day - 1
    deferred = (model.rate * np.maximum(model.next_event - t - 1, 0)).sum(axis=1)
    np.testing.assert_allclose(recognised + deferred, model.cash, rtol=1e-5)
    assert (recognised < model.cash).all()


# ---- signals and objective -----------------------------------------------------------------------


def test_summaries_signals_and_the_objective_estimate() -> None:
    model, outcomes = _run([{}, {"monthly_price": 25.0}, {"trial_days": 0.0}], n=3000, days=75,
                           twins=False)  # fmt: skip
    summaries = model.summarise()
    assert list(summaries) == list(METRICS)
    recognised = np.sum([o.value * o.enrolled for o in outcomes], axis=0)
    np.testing.assert_allclose(model.value_total.sum(axis=1), recognised, rtol=1e-5)
    objective = model.objective_summary()
    assert [s.n for s in objective] == [3000] * 3
    assert [s.mean for s in objective] == pytest.approx(recognised / 3000, rel=1e-5)
    assert all(len(per_arm) == 3 for per_arm in summaries.values())
    signals = model.signals(summaries)
    assert len(signals) == 3
    last = outcomes[-1]
    for arm, sig in enumerate(signals):
        assert list(sig.metrics) == list(METRICS)
        assert sig.enrolled == last.enrolled[arm] == 3000  # all arrived by day 60
        assert sig.active_today == last.active[arm] <= sig.active_7d <= sig.enrolled
        assert sig.total_actions == model.counts["payments"][arm] > 0
        assert sig.experiment_days == 75
        estimate = SC.estimate_objective(sig)
        assert estimate is not None and math.isclose(estimate, last.value[arm], rel_tol=1e-9)
        for metric in ("TRIAL_START_RATE", "RETENTION_RATE", "ANNUAL_SHARE"):
            assert 0.0 < sig.metrics[metric].value < 1.0
    assert signals[2].metrics["CONVERSION_RATE"].sample_size == 0  # no trials, no conversions
    # ARPPU is the monthly price paid by the average paying subscriber
    assert 10.0 < signals[0].metrics["ARPPU"].value < 16.0


def test_estimate_objective_is_none_before_anyone_arrives() -> None:
    late = dataclasses.replace(POP, initial_share=1e-9, arrival_days=5)
    model = SC.model(late, 1, 0, n_users=50)
    model.step(SC.knobs.array([BASE]))
    (signal,) = model.signals(model.summarise())
    assert signal.enrolled == 0 and SC.estimate_objective(signal) is None


def test_user_day_columns_add_up_to_the_day() -> None:
    model = SC.model(POP, 2, 3, n_users=4000)
    table = SC.knobs.array([BASE, {**BASE, "trial_days": 0.0}])
    for _ in range(40):
        alive_before = model.alive.copy()
        outcome = model.step(table)
    rows = model.user_day(alive_before)
    n = len(rows["arm"])
    assert list(rows)[:2] == ["arm", "user"] and rows["arm"].dtype == np.int8
    assert rows["user"].dtype == np.int32 and all(len(v) == n for v in rows.values())
    assert n == outcome.enrolled.sum()
    for arm in range(2):
        mine = rows["arm"] == arm
        np.testing.assert_allclose(rows["revenue"][mine].sum(), outcome.totals["revenue"][arm],
                                   rtol=1e-5)  # fmt: skip
        np.testing.assert_allclose(rows["charged"][mine].sum(), outcome.totals["cash"][arm],
                                   rtol=1e-5)  # fmt: skip
        assert rows["subscribed"][mine].sum() == outcome.active[arm]
        assert rows["cancelled"][mine].sum() == outcome.totals["churned"][arm]


def test_monthly_subscribers_pay_the_current_price_after_the_intro() -> None:
    offer = {"trial_days": 0.0, "intro_months": 1.0, "intro_discount": 0.5}
    model = SC.model(POP, 1, 0, n_users=5000)
    table = SC.knobs.array([{**BASE, **offer}])
    model.step(table)  # day 0: the first prospects pay half price
    monthly = (model.status == 3) & (model.arrival == 0)
    assert np.allclose(model.rate[monthly] * MONTH_DAYS, 7.5)
    raised = SC.knobs.array([{**BASE, **offer, "monthly_price": 18.0}])
    for _ in range(MONTH_DAYS):
        model.step(raised)
    renewed = monthly & (model.status == 3)
    assert renewed.any() and np.allclose(model.rate[renewed] * MONTH_DAYS, 18.0)


def test_state_is_float32_and_compact() -> None:
    model = SC.model(POP, 5, 0, n_users=10_000)
    assert all(v.dtype == np.float32 for v in model.traits.values())
    assert model.rate.dtype == model.reference.dtype == model.alive.dtype == np.float32
    assert model.state_nbytes() / 10_000 < 80


def test_docs_exist() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "scenarios" / "pricing.md"
    text = doc.read_text()
    for field in (f.name for f in dataclasses.fields(POP.behaviour)):
        assert f"`{field}`" in text, field
