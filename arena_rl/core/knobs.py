"""A scenario's action space: named knobs with bounds, defaults and integrality.

An economy (one variant's setting of every knob) is a plain ``dict[str, float]`` keyed by knob
name, so the same dicts cross the agent protocol, the guardrails and the HTTP API unchanged;
arrays of economies have one column per knob, in the scenario's knob order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

SEARCH_MULTIPLE = 10.0
"""Searches (ground truth, strategies that derive their space from bounds) stop at this
multiple of a knob's default where its valid range has no top."""


class KnobError(ValueError):
    """A knob declaration, an economy or an override that cannot be used; the message says
    which knob and why."""


@dataclass(frozen=True)
class Knob:
    """One setting a variant can change.

    Args:
        name: the key in every economy dict (the live platform's name where there is one).
        default: the global default, where every experiment starts unless its tenant says
            otherwise.
        low, high: the values the platform accepts (``high`` may be ``math.inf``, as for the
            live platform's XP, which only must not be negative); search spaces derive from
            them (:attr:`search_high`).
        integer: whether only whole numbers are valid (counts, caps, days).
        unit: what the number measures, for people and prompts ("XP", "USD", "days").
        description: what the knob does, in one line (shown to the LLM agent).
    """

    name: str
    default: float
    low: float
    high: float
    integer: bool = False
    unit: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        where = f"knob {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise KnobError(f"a knob needs a non-empty name, got {self.name!r}")
        for field in ("default", "low", "high"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise KnobError(f"{where}: {field} must be a number, got {value!r}")
            if math.isnan(value) or (field != "high" and not math.isfinite(value)):
                raise KnobError(f"{where}: {field} must be finite, got {value!r}")
        if not self.low <= self.high:
            raise KnobError(f"{where}: low {self.low:g} is above high {self.high:g}")
        if not self.low <= self.default <= self.high:
            raise KnobError(
                f"{where}: default {self.default:g} is outside its bounds "
                f"[{self.low:g}, {self.high:g}]"
            )
        if self.integer and not float(self.default).is_integer():
            raise KnobError(f"{where}: an integer knob needs a whole default, got {self.default!r}")

    @property
    def search_high(self) -> float:
        """The top of the range searches explore: ``high``, or where it is unbounded,
        :data:`SEARCH_MULTIPLE` times the default (at least the low end)."""
        if math.isfinite(self.high):
            return float(self.high)
        return max(float(self.default) * SEARCH_MULTIPLE, float(self.low))


class Knobs:
    """The ordered knobs of one scenario, and every check an economy must pass.

    Args:
        knobs: the knobs, in the column order of economy arrays; names must be distinct.
    """

    def __init__(self, knobs: Sequence[Knob]) -> None:
        names = [k.name for k in knobs]
        if not names:
            raise KnobError("a scenario needs at least one knob")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise KnobError(f"duplicate knob name(s): {', '.join(duplicates)}")
        self.knobs: tuple[Knob, ...] = tuple(knobs)
        self.keys: tuple[str, ...] = tuple(names)
        """Canonical key order; the column order of every economy array."""
        self.defaults: Mapping[str, float] = MappingProxyType(
            {k.name: float(k.default) for k in knobs}
        )
        self.integer: frozenset[str] = frozenset(k.name for k in knobs if k.integer)
        self.by_name: Mapping[str, Knob] = MappingProxyType({k.name: k for k in knobs})

    def __reduce__(self) -> tuple[type, tuple[tuple[Knob, ...]]]:
        return Knobs, (self.knobs,)  # the read-only views are rebuilt, not pickled

    def __len__(self) -> int:
        return len(self.knobs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Knobs) and self.knobs == other.knobs

    def __hash__(self) -> int:
        return hash(self.knobs)

    def __repr__(self) -> str:
        return f"Knobs({', '.join(self.keys)})"

    def validate(
        self, overrides: Mapping[str, object], *, where: str = "economy"
    ) -> dict[str, float]:
        """Check a partial economy and return it as floats.

        Args:
            overrides: key -> value; any subset of the knobs.
            where: names the source in error messages (a file, a variant, an agent).

        Raises:
            KnobError: naming the key for an unknown key, a non-number, NaN or infinity, a
                value outside the knob's bounds, or a fractional value of an integer knob.
        """
        if not isinstance(overrides, Mapping):
            raise KnobError(f"{where}: expected a mapping of knobs, got {type(overrides).__name__}")
        clean: dict[str, float] = {}
        for key, value in overrides.items():
            knob = self.by_name.get(key)
            if knob is None:
                raise KnobError(
                    f"{where}: unknown key {key!r}; valid keys are {', '.join(self.keys)}"
                )
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise KnobError(f"{where}: {key} must be a number, got {value!r}")
            try:
                number = float(value)
            except OverflowError:  # an int past float's range, e.g. 10**400
                number = math.inf
            if not math.isfinite(number):
                raise KnobError(f"{where}: {key} must be finite, got {number}")
            if number < knob.low:
                raise KnobError(f"{where}: {key} must be at least {knob.low:g}, got {number:g}")
            if number > knob.high:
                raise KnobError(f"{where}: {key} must be at most {knob.high:g}, got {number:g}")
            if knob.integer and not number.is_integer():
                raise KnobError(f"{where}: {key} must be a whole number, got {number}")
            clean[key] = number
        return clean

    def resolve(
        self, *layers: Mapping[str, object] | None, where: str = "economy"
    ) -> dict[str, float]:
        """The resolution chain: the knobs' defaults, then each layer in order (later wins).

        Each layer is validated; the result always holds every knob.
        """
        economy = dict(self.defaults)
        for i, layer in enumerate(layers):
            if layer:
                economy.update(self.validate(layer, where=f"{where} (layer {i + 1})"))
        return economy

    def array(self, economies: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Stack full economies into a float64 array of shape (n, n_knobs), in knob order."""
        return np.array([[float(e[k]) for k in self.keys] for e in economies], dtype=np.float64)

    def rounded(self, economy: Mapping[str, float]) -> dict[str, float]:
        """Integer knobs rounded to whole numbers (half to even, as the live platform does)."""
        return {k: float(round(v)) if k in self.integer else float(v) for k, v in economy.items()}

    def clipped(self, economy: Mapping[str, float]) -> dict[str, float]:
        """Each known key clipped into its knob's bounds, then rounded where integer: the
        nearest economy the platform accepts."""
        out = {}
        for key, value in economy.items():
            knob = self.by_name[key]
            out[key] = min(max(float(value), knob.low), knob.high)
        return self.rounded(out)

    def describe(self) -> str:
        """One line per knob: name, default, bounds, unit and what it does (for prompts)."""
        lines = []
        for k in self.knobs:
            kind = "whole number" if k.integer else "number"
            unit = f" {k.unit}" if k.unit else ""
            lines.append(
                f"- {k.name}: default {k.default:g}{unit}, a {kind} in [{k.low:g}, {k.high:g}]"
                + (f"; {k.description}" if k.description else "")
            )
        return "\n".join(lines)
