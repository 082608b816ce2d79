"""The population's behavioural effects against published effect sizes (docs/calibration.md).

Every effect must have the status the doc records for it: "inside" (the simulated effect, CI
included, lies in the published range), "direction" (only a direction is published, and the
simulated effect has it) or "outside" (the doc says so, why, and what recalibration it
proposes). A recalibration that moves an effect changes its status, and this test then asks
for the doc to be updated with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from arena_rl.scenarios.gamification.calibration import (
    DIRECTION,
    EFFECTS,
    INSIDE,
    OUTSIDE,
    Effect,
    Setup,
    estimate,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "calibration.md"
SEEDS = range(8)
"""As scripts/calibrate.py by default, so the test checks the figures the doc quotes."""


@pytest.fixture(scope="module")
def setup() -> Setup:
    return Setup.default(users_per_arm=20_000)


@pytest.mark.parametrize("effect", EFFECTS, ids=[e.key for e in EFFECTS])
def test_effect_has_its_documented_status(effect: Effect, setup: Setup) -> None:
    est = estimate(effect, setup, SEEDS)
    assert est.status == effect.status, (effect.key, est.mean, (effect.low, effect.high))
    if effect.status in (INSIDE, DIRECTION):  # a claimed match holds for the whole CI
        assert effect.verdict(est.low) and effect.verdict(est.high), (est.low, est.high)
    else:  # a documented miss is a clear miss, not noise at the boundary
        assert est.status == OUTSIDE
        assert not (effect.verdict(est.low) or effect.verdict(est.high)), (est.low, est.high)


def test_doc_table_agrees_with_the_effects() -> None:
    """Each effect has a row in docs/calibration.md naming its key, range and status."""
    rows = {
        m.group(1): line
        for line in DOC.read_text().splitlines()
        if (m := re.match(r"\|\s*`(\w+)`\s*\|", line))
    }
    assert set(rows) == {e.key for e in EFFECTS}
    for effect in EFFECTS:
        cells = [c.strip() for c in rows[effect.key].strip("|").split("|")]
        assert cells[-1].split()[0].strip("*") == effect.status, (effect.key, cells[-1])
        assert effect.source.split()[0] in rows[effect.key], effect.key
