"""Helpers every strategy shares: confidence gates, the reward estimate, bounded moves.

Everything here works on any scenario through its knobs (``info.knobs``) and its objective
estimate; ``BaseAgent`` is re-exported so strategies import their plumbing from one place.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, ValidationError, validate_call
from pydantic.fields import FieldInfo

from arena_rl.agent import BaseAgent, VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.knobs import Knobs
from arena_rl.core.signals import Signals

__all__ = [
    "BaseAgent",
    "Confidence",
    "Count",
    "Fraction",
    "NonNegative",
    "NonNegativeInt",
    "Percent",
    "Positive",
    "close_enough",
    "confident",
    "hyperparameters",
    "nudged",
    "reward",
    "same_action",
    "scaled",
    "toward",
]

LEVELS = {"low": 0, "medium": 1, "high": 2}


def confident(signals: Signals, metrics: Iterable[str], minimum: str = "medium") -> bool:
    """Whether every named metric has at least ``minimum`` confidence (a careful live agent
    acts on nothing less)."""
    need = LEVELS[minimum]
    return all(LEVELS[signals.metrics[m].confidence] >= need for m in metrics)


def reward(signals: Signals, info: VariantInfo) -> float | None:
    """Today's scenario objective estimated from signals; None until the metrics the
    estimate reads (``scenario.objective_metrics``) are confident."""
    if not confident(signals, info.scenario.objective_metrics):
        return None
    return info.estimate_objective(signals)


CLOSE_ENOUGH = 0.05
"""A value closer than this to a target counts as there (a ±x % clamp halves toward 0 for
ever); a knob with a narrow range uses a thousandth of its range instead."""


def close_enough(knobs: Knobs, key: str) -> float:
    """How near a target a knob's value counts as there: :data:`CLOSE_ENOUGH`, or a thousandth
    of the knob's range when that is smaller."""
    knob = knobs.by_name[key]
    return min(CLOSE_ENOUGH, 1e-3 * (knob.high - knob.low))


def toward(
    target: Mapping[str, float], current: Mapping[str, float], reasoning: str, knobs: Knobs
) -> ConfigUpdate | None:
    """Request the knobs where ``target`` differs from ``current`` (clipped into bounds,
    integers rounded).

    The delta clamp turns a far target into a bounded step, so asking for the target outright
    is the fastest legal way there. None when already there.
    """
    wanted = knobs.clipped({k: target[k] for k in knobs.keys if k in target})
    changes = {k: v for k, v in wanted.items() if abs(v - current[k]) > close_enough(knobs, k)}
    return ConfigUpdate(changes, reasoning) if changes else None


def same_action(a: ConfigUpdate | None, b: ConfigUpdate | None) -> bool:
    """Whether two answers are the same action: both hold, or request the same overrides (the
    reasoning is commentary, not part of the action). What action probabilities are of."""
    if a is None or b is None:
        return a is b
    return dict(a.overrides) == dict(b.overrides)


def scaled(
    base: Mapping[str, float], multipliers: Mapping[str, float], knobs: Knobs
) -> dict[str, float]:
    """``base`` with some knobs multiplied (clipped into bounds, integers rounded): how arms
    are written in config."""
    return knobs.clipped({k: base[k] * multipliers.get(k, 1.0) for k in knobs.keys})


def nudged(
    current: Mapping[str, float],
    keys: Sequence[str],
    factor: float,
    knobs: Knobs,
    min_cap: float = 1.0,
) -> dict[str, float]:
    """``current`` with ``keys`` multiplied by ``factor``.

    An integer knob moves by at least one whole unit (rounding would otherwise pin a small
    one, e.g. 2 × 0.88 → 2) and never below ``min_cap`` when cut.
    """
    target = dict(current)
    for key in keys:
        value = current[key] * factor
        if key in knobs.integer:
            step = round(value) - current[key]
            if step == 0 and factor != 1.0:
                step = 1.0 if factor > 1.0 else -1.0
            value = current[key] + step
            if factor < 1.0:
                value = max(value, min(min_cap, current[key]))
        target[key] = max(value, 0.0)
    return target


# ---- hyperparameters ----------------------------------------------------------------------
# A bad hyperparameter is refused when the agent is built (before any experiment starts), with
# a message naming it: pydantic checks ``__init__``'s annotated types, :func:`hyperparameters`
# turns its report into one short line per bad parameter.

NonNegative = Annotated[float, Field(ge=0)]
"""A weight, rate or gain where 0 switches the effect off."""
Positive = Annotated[float, Field(gt=0)]
"""A scale or spread that is divided by, or a limit that must leave room to act."""
Fraction = Annotated[float, Field(ge=0, le=1)]
"""A share or probability."""
Percent = Annotated[float, Field(gt=0, le=100)]
"""A cut or bounded step as % of the current value: more than 100 % would go below zero."""
Count = Annotated[int, Field(ge=1)]
"""Days between decisions, pulls, points, rounds: at least one."""
NonNegativeInt = Annotated[int, Field(ge=0)]
"""Days skipped, retries, restarts: none is allowed."""
Confidence = Literal["low", "medium", "high"]
"""A least confidence level (:data:`LEVELS`)."""

STRICT = ConfigDict(strict=True, allow_inf_nan=False)
"""No coercion but int -> float (so "2" is no number and 2.5 no count); no NaN or infinity."""

InitT = TypeVar("InitT", bound=Callable[..., None])
_NOUNS: dict[object, tuple[str, str]] = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "true or false"),
    str: ("a string", "strings"),
}


def hyperparameters(init: InitT) -> InitT:
    """Decorate an agent's ``__init__``: its arguments are checked against their annotations
    (pydantic, :data:`STRICT`), and a bad one raises ValueError naming the parameter, the
    value given and what is allowed, e.g. ``c must be a number >= 0, got -1``; every bad one
    is listed, separated by "; "."""
    checked = validate_call(config=STRICT)(init)
    names = list(inspect.signature(init).parameters)  # self first, as pydantic counts them

    @functools.wraps(init)
    def wrapper(self: object, *args: Any, **kwargs: Any) -> None:
        try:
            checked(self, *args, **kwargs)
        except ValidationError as exc:
            given = dict(zip(names, (self, *args), strict=False)) | kwargs
            raise ValueError(_explained(exc, init, names, given)) from None

    return typing.cast(InitT, wrapper)


def _explained(
    exc: ValidationError, init: Callable[..., None], names: list[str], given: Mapping[str, Any]
) -> str:
    """One clause per bad parameter, in the order pydantic met them."""
    hints = typing.get_type_hints(init, include_extras=True)
    hints.pop("return", None)
    owner = type(given[names[0]]).__name__
    lines: dict[str, str] = {}
    for error in exc.errors():
        where = error["loc"][0] if error["loc"] else "?"
        if isinstance(where, int):  # a positional argument: pydantic gives its index
            where = names[where] if where < len(names) else f"argument {where}"
        name = str(where)
        if name in lines:
            continue  # one clause per parameter (a union reports each of its members)
        if name not in hints:
            what = f"no parameter {name!r}" if name in given else f"no {name}"
            lines[name] = f"{owner} has {what} (it takes {', '.join(hints) or 'none'})"
            continue
        allowed = describe(hints[name])
        if error["type"] == "finite_number":
            allowed = allowed.replace("a number", "a finite number", 1)
        lines[name] = f"{name} must be {allowed}, got {given.get(name, error['input'])!r}"
    return "; ".join(lines.values())


def describe(hint: Any, plural: bool = False) -> str:
    """What a parameter annotation allows, in words: ``a number in [0, 1]``, ``an integer >=
    1 or None``, ``one of 'low', 'medium', 'high'``, ``a mapping to numbers >= 0``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return describe(args[0], plural) + _bounds(args[1:])
    if origin in (typing.Union, types.UnionType):
        parts = [describe(a, plural) for a in args if a is not types.NoneType]
        parts += ["None"] if types.NoneType in args else []
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (Mapping, dict):
        return ("mappings" if plural else "a mapping") + " to " + describe(args[1], True)
    if origin in (Sequence, list, tuple):
        return ("lists" if plural else "a list") + " of " + describe(args[0], True)
    if hint is Any:
        return "anything"
    nouns = _NOUNS.get(hint)
    return nouns[plural] if nouns else getattr(hint, "__name__", str(hint))


_KINDS = ("ge", "gt", "le", "lt", "min_length", "max_length")


def _bounds(metadata: Sequence[Any]) -> str:
    """`` >= 0``, `` in (0, 100]``, `` (length 2)`` from pydantic's constraint metadata."""
    found: dict[str, Any] = {}
    for item in metadata:
        for constraint in item.metadata if isinstance(item, FieldInfo) else [item]:
            found.update((k, getattr(constraint, k)) for k in _KINDS if hasattr(constraint, k))
    low = next(((k, found[k]) for k in ("ge", "gt") if k in found), None)
    high = next(((k, found[k]) for k in ("le", "lt") if k in found), None)
    text = ""
    if low and high:
        opening, closing = "[" if low[0] == "ge" else "(", "]" if high[0] == "le" else ")"
        text = f" in {opening}{low[1]:g}, {high[1]:g}{closing}"
    elif side := low or high:
        text = f" {dict(ge='>=', gt='>', le='<=', lt='<')[side[0]]} {side[1]:g}"
    if "min_length" in found and found.get("min_length") == found.get("max_length"):
        text += f" (length {found['min_length']})"
    elif found.get("min_length") == 1:
        text += " (not empty)"
    return text
