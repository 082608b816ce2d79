"""The XP economy: ten parameters, their defaults, the resolution chain and validation.

An economy is a plain ``dict[str, float]`` keyed by the live platform's camelCase names, so the
same dicts cross the agent protocol, the guardrails and (later) the HTTP API unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

DEFAULT_ECONOMY: Mapping[str, float] = MappingProxyType(
    {
        "scanXp": 10.0,
        "feedbackXp": 15.0,
        "issueReportXp": 25.0,
        "statusReportXp": 20.0,
        "photoXp": 10.0,
        "firstScanOfDayXp": 15.0,
        "streakBonusPerDay": 5.0,
        "streakBonusCap": 50.0,
        "scanDailyCap": 20.0,
        "feedbackDailyCap": 10.0,
    }
)
"""Global defaults, as on the live platform."""

ECONOMY_KEYS: tuple[str, ...] = tuple(DEFAULT_ECONOMY)
"""Canonical key order; column order of every economy array."""

INTEGER_KEYS: frozenset[str] = frozenset({"streakBonusCap", "scanDailyCap", "feedbackDailyCap"})
"""Caps are whole numbers (counts, or a whole-XP ceiling)."""


class EconomyError(ValueError):
    """An economy or override that the platform would not accept."""


def validate_overrides(
    overrides: Mapping[str, object], *, where: str = "economy"
) -> dict[str, float]:
    """Check a partial economy and return it as floats.

    Args:
        overrides: key -> value; any subset of ``ECONOMY_KEYS``.
        where: names the source in error messages (a file, a variant, an agent).

    Raises:
        EconomyError: naming the key for an unknown key, a non-number, NaN or infinity, a
            negative value, or a non-integer cap.
    """
    if not isinstance(overrides, Mapping):
        raise EconomyError(
            f"{where}: expected a mapping of economy keys, got {type(overrides).__name__}"
        )
    clean: dict[str, float] = {}
    for key, value in overrides.items():
        if key not in DEFAULT_ECONOMY:
            raise EconomyError(
                f"{where}: unknown economy key {key!r}; valid keys are {', '.join(ECONOMY_KEYS)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise EconomyError(f"{where}: {key} must be a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise EconomyError(f"{where}: {key} must be finite, got {number}")
        if number < 0:
            raise EconomyError(f"{where}: {key} must be non-negative, got {number}")
        if key in INTEGER_KEYS and not number.is_integer():
            raise EconomyError(f"{where}: {key} is a cap and must be a whole number, got {number}")
        clean[key] = number
    return clean


def resolve_economy(
    *layers: Mapping[str, object] | None, where: str = "economy"
) -> dict[str, float]:
    """Apply the resolution chain: global defaults, then each layer in order.

    Typical use: ``resolve_economy(scenario_overrides, variant_overrides)``. Each layer is
    validated; later layers win. The result always holds all ten keys.
    """
    economy = dict(DEFAULT_ECONOMY)
    for i, layer in enumerate(layers):
        if layer:
            economy.update(validate_overrides(layer, where=f"{where} (layer {i + 1})"))
    return economy


def economy_array(economies: Sequence[Mapping[str, float]]) -> np.ndarray:
    """Stack full economies into a float64 array of shape (n_arms, 10) in ``ECONOMY_KEYS`` order."""
    return np.array([[float(e[k]) for k in ECONOMY_KEYS] for e in economies], dtype=np.float64)


def round_caps(economy: Mapping[str, float]) -> dict[str, float]:
    """Round integer keys to whole numbers (half to even, as the live platform does)."""
    return {k: float(round(v)) if k in INTEGER_KEYS else float(v) for k, v in economy.items()}
