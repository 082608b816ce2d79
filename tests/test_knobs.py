"""Knob declarations and economies: an inconsistent plugin is refused when it is declared, and
an economy outside a knob's bounds is refused with the knob's name."""

from __future__ import annotations

import math
import pickle

import pytest

from arena_rl.core.knobs import Knob, KnobError, Knobs

PRICE = Knob("price", 10.0, 1.0, 50.0, unit="USD", description="what a month costs")
DAYS = Knob("days", 7.0, 0.0, 30.0, integer=True)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Knob("p", 60.0, 1.0, 50.0), "default 60 is outside its bounds"),
        (lambda: Knob("p", 0.5, 1.0, 50.0), "default 0.5 is outside its bounds"),
        (lambda: Knob("p", 5.0, 9.0, 2.0), "low 9 is above high 2"),
        (lambda: Knob("d", 7.5, 0.0, 30.0, integer=True), "needs a whole default, got 7.5"),
        (lambda: Knob("p", math.nan, 0.0, 1.0), "default must be finite"),
        (lambda: Knob("p", 1.0, -math.inf, 2.0), "low must be finite"),
        (lambda: Knob("", 1.0, 0.0, 2.0), "non-empty name"),
        (lambda: Knob("p", "1", 0.0, 2.0), "default must be a number"),  # type: ignore[arg-type]
        (lambda: Knobs([PRICE, DAYS, PRICE]), "duplicate knob name(s): price"),
        (lambda: Knobs([]), "at least one knob"),
    ],
)
def test_inconsistent_declarations_are_refused(make: object, message: str) -> None:
    with pytest.raises(KnobError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()  # type: ignore[operator]


def test_an_unbounded_top_is_allowed_and_searched_up_to_ten_defaults() -> None:
    xp = Knob("xp", 10.0, 0.0, math.inf)
    assert xp.search_high == 100.0 and PRICE.search_high == 50.0
    assert Knobs([xp]).validate({"xp": 1e6}) == {"xp": 1e6}


@pytest.mark.parametrize(
    ("economy", "message"),
    [
        ({"prise": 3}, "unknown key 'prise'; valid keys are price, days"),
        ({"price": 0.5}, "price must be at least 1, got 0.5"),
        ({"price": 51}, "price must be at most 50, got 51"),
        ({"days": 3.5}, "days must be a whole number, got 3.5"),
        ({"price": math.inf}, "price must be finite"),
        ({"price": True}, "price must be a number"),
        ({"price": "12"}, "price must be a number"),
    ],
)
def test_economies_outside_the_knobs_are_refused_by_name(
    economy: dict[str, object], message: str
) -> None:
    with pytest.raises(KnobError, match=message):
        Knobs([PRICE, DAYS]).validate(economy, where="variant 'a'")


def test_resolve_array_round_clip_and_pickle() -> None:
    knobs = Knobs([PRICE, DAYS])
    economy = knobs.resolve({"price": 12}, None, {"days": 14})
    assert economy == {"price": 12.0, "days": 14.0}
    assert knobs.array([economy, knobs.defaults]).tolist() == [[12.0, 14.0], [10.0, 7.0]]
    assert knobs.rounded({"days": 6.5, "price": 6.5}) == {"days": 6.0, "price": 6.5}
    assert knobs.clipped({"price": 99.0, "days": -3.0}) == {"price": 50.0, "days": 0.0}
    assert pickle.loads(pickle.dumps(knobs)) == knobs
    text = knobs.describe()
    assert "price: default 10 USD, a number in [1, 50]; what a month costs" in text
    assert "days: default 7, a whole number in [0, 30]" in text
