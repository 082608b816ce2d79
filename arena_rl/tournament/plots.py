"""Figures for a tournament run: the leaderboard with CIs and mean daily trajectories.

Figures are built with matplotlib's object API on an Agg canvas, never through ``pyplot``: no
display is needed, no global figure registry fills up, and importing this module does not switch
the backend of whoever imported it (a notebook keeps its own).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.tournament.play import TournamentResult

__all__ = ["OBJECTIVE", "as_record", "leaderboard_plot", "mean_history", "trajectories_plot"]

OBJECTIVE = "objective"
"""Series name of the daily objective value next to the six metrics in :func:`mean_history`."""


def as_record(standing: Any) -> dict[str, Any]:
    """A standings row as a plain dict, whether it came as a mapping or a dataclass."""
    if isinstance(standing, Mapping):
        return dict(standing)
    if dataclasses.is_dataclass(standing) and not isinstance(standing, type):
        return dataclasses.asdict(standing)
    raise TypeError(f"a standings record must be a mapping or a dataclass, got {type(standing)}")


def mean_history(
    results: Sequence[TournamentResult], arm: str, *, among: str | None = None
) -> dict[str, npt.NDArray[np.float64]]:
    """Per series (each metric and ``"objective"``), the day-by-day mean over tournaments.

    Args:
        results: tournaments; only those in which ``among`` played count.
        arm: whose values are averaged: an agent or ``CONTROL_ARM``.
        among: the agent whose tournaments are used (default ``arm``). Averaging control over
            an agent's own tournaments compares both on the same population samples.

    Returns:
        Series name -> (days,) array; a day missing from some tournaments is averaged over the
        others, a day with no finite value is nan. Empty if ``among`` never played.
    """
    played = [r for r in results if (among or arm) in r.history and arm in r.history]
    if not played:
        return {}
    names = [*played[0].history[arm], OBJECTIVE]
    return {
        name: _ragged_mean(
            [r.daily_value[arm] if name == OBJECTIVE else r.history[arm][name] for r in played]
        )
        for name in names
    }


def _ragged_mean(series: Sequence[Sequence[float]]) -> npt.NDArray[np.float64]:
    """Mean per position over sequences of possibly different lengths, ignoring nan."""
    days = max(len(s) for s in series)
    padded = np.full((len(series), days), np.nan)
    for row, values in zip(padded, series, strict=True):
        row[: len(values)] = values
    finite = np.isfinite(padded)
    counts = finite.sum(axis=0)
    totals = np.where(finite, padded, 0.0).sum(axis=0)
    # nan where no tournament has a finite value: avoids numpy's empty-slice warning
    means: npt.NDArray[np.float64] = np.divide(
        totals, counts, out=np.full(days, np.nan), where=counts > 0
    )
    return means


def leaderboard_plot(
    standings: Sequence[Any], *, fields: Sequence[str] = ("objective", "lift")
) -> Figure:
    """One panel per field: each agent's mean with its 95 % CI as an error bar, best on top.

    Args:
        standings: leaderboard rows (mappings or dataclasses) with ``name``, each field and its
            CI bounds ``<field>_lo`` / ``<field>_hi``, as :mod:`arena_rl.tournament.ratings`
            makes them;
            ordered by ``rank`` when they have it, else by the first field, descending.
        fields: what to plot; fields no row has are left out. ``lift`` gets a line at 0 (the
            control arm).
    """
    records = _ranked([as_record(s) for s in standings], fields)
    shown = [f for f in fields if any(f in r for r in records)]
    if not records or not shown:
        raise ValueError(f"no standings with any of the fields {list(fields)} to plot")
    fig = _figure(width=4.2 * len(shown), height=0.9 + 0.45 * len(records))
    y = np.arange(len(records))
    for i, field in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), i + 1)
        mean = np.array([_number(r.get(field)) for r in records])
        lo = np.array([_number(r.get(f"{field}_lo")) for r in records])
        hi = np.array([_number(r.get(f"{field}_hi")) for r in records])
        # a missing bound draws no bar on that side rather than failing the whole figure
        err = np.nan_to_num(np.vstack([mean - lo, hi - mean]), nan=0.0).clip(min=0.0)
        ax.errorbar(mean, y, xerr=err, fmt="o", capsize=4)
        if field == "lift":
            ax.axvline(0.0, color="grey", linestyle="--", linewidth=1, label=CONTROL_ARM)
            ax.legend(loc="best", fontsize="small")
        ax.set_yticks(y, [str(r.get("name", "?")) for r in records] if i == 0 else [])
        ax.set_ylim(len(records) - 0.5, -0.5)  # rank 1 at the top
        ax.set_xlabel(f"{field} (mean, 95% CI)")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Leaderboard over tournaments")
    return fig


def trajectories_plot(results: Sequence[TournamentResult]) -> Figure:
    """Mean daily trajectory of every metric and the daily objective: each agent vs control.

    Seven small panels (six metrics, then the objective per day) in a 2 x 4 grid; the eighth
    holds the legend. Control is averaged over all tournaments, each agent over its own.
    """
    if not results:
        raise ValueError("no tournament results to plot")
    agents = list(dict.fromkeys(n for r in results for n in r.agents))
    arms = {CONTROL_ARM: mean_history(results, CONTROL_ARM)}
    arms.update({a: mean_history(results, a) for a in agents})
    series = list(arms[CONTROL_ARM])
    fig = _figure(width=16.0, height=7.0)
    axes = fig.subplots(2, 4).ravel()
    for ax, name in zip(axes, series, strict=False):
        for arm, history in arms.items():
            values = history.get(name)
            if values is None:
                continue
            style = {"color": "black", "linestyle": "--"} if arm == CONTROL_ARM else {}
            ax.plot(np.arange(values.size), values, label=arm, linewidth=1.4, **style)
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel("day")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[len(series) :]:
        ax.axis("off")
    axes[-1].legend(handles, labels, loc="center", title=f"mean of {len(results)} tournaments")
    fig.suptitle("Daily trajectories: agents vs control")
    return fig


def _figure(*, width: float, height: float) -> Figure:
    """A figure on its own Agg canvas: renders to PNG anywhere, touches no global state."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _ranked(records: list[dict[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """Rows by ``rank`` if every row has one, else by the first plotted field, best first."""
    if records and all("rank" in r for r in records):
        return sorted(records, key=lambda r: _number(r["rank"]))
    first = fields[0] if fields else ""

    def key(r: dict[str, Any]) -> float:
        value = _number(r.get(first))
        return -value if math.isfinite(value) else math.inf

    return sorted(records, key=key)


def _number(value: Any) -> float:
    """A float, nan for a missing or non-numeric value."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
