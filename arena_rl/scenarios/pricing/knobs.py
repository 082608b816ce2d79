"""The subscription offer's knobs: the price and the discounts a variant sets.

Prices are in USD per month; the annual plan's price follows from the monthly price and its
discount, so one price knob moves both plans. Bounds are the offers a real product could
plausibly run; the ground-truth search stays inside them.
"""

from __future__ import annotations

from arena_rl.core.knobs import Knob, Knobs

KNOBS = Knobs(
    [
        Knob(
            "monthly_price",
            15.0,
            5.0,
            40.0,
            unit="USD/month",
            description=(
                "list price of the monthly plan; every monthly subscriber pays the current "
                "price at each renewal once the intro months are over"
            ),
        ),
        Knob(
            "annual_discount",
            0.15,
            0.0,
            0.5,
            unit="share",
            description=(
                "share off twelve monthly payments for the annual plan, paid up front and "
                "locked in for a year"
            ),
        ),
        Knob(
            "trial_days",
            7.0,
            0.0,
            30.0,
            integer=True,
            unit="days",
            description="length of the free trial; 0 means customers pay on sign-up",
        ),
        Knob(
            "intro_discount",
            0.2,
            0.0,
            0.8,
            unit="share",
            description="share off the monthly price for a new subscriber's first intro_months",
        ),
        Knob(
            "intro_months",
            2.0,
            0.0,
            6.0,
            integer=True,
            unit="months",
            description="monthly payments at the intro discount; 0 means no intro offer",
        ),
    ]
)
"""The pricing plugin's action space, in economy-array column order."""

PRICE, ANNUAL_DISCOUNT, TRIAL_DAYS, INTRO_DISCOUNT, INTRO_MONTHS = range(len(KNOBS))
"""Column of each knob in an economy array."""
