"""Aggregate tournament results into a leaderboard: means with CIs, win rate, rank, ratings.

One tournament is one noisy draw of every agent's performance, so every summary here treats the
tournament as the unit: bootstrap CIs resample tournaments, win rate and rank are counted per
tournament, and OpenSkill sees each tournament as one free-for-all match. The control arm is a
yardstick, not a contestant: it enters lift, never win rate, rank or ratings.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
from openskill.models import PlackettLuce
from scipy.stats import rankdata

from arena_rl.core.stats import bootstrap_mean_ci
from arena_rl.tournament.play import CONTROL_ARM, TournamentResult

__all__ = [
    "AgentStanding",
    "format_leaderboard",
    "format_personas",
    "format_usage",
    "leaderboard",
    "persona_totals",
    "standings_records",
    "usage_totals",
]

_Z95 = 1.959963984540054  # two-sided 95 % normal quantile, for the rating interval


@dataclass(frozen=True)
class AgentStanding:
    """One agent's summary over every tournament it played.

    Mean-and-CI triples are 95 % percentile-bootstrap intervals over tournaments (nan bounds
    with a single tournament; all nan for regret when no tournament computed it). Ratings are
    OpenSkill Plackett-Luce skill on its own scale (prior mu 25, sigma 25/3).
    """

    name: str
    n: int
    """Tournaments played."""
    objective: float
    objective_lo: float
    objective_hi: float
    lift: float
    lift_lo: float
    lift_hi: float
    regret: float
    regret_lo: float
    regret_hi: float
    win_rate: float
    """Share of its tournaments where it had the best objective among agents; ties share."""
    mean_rank: float
    """Average rank among the agents of each tournament, 1 = best; ties take the mean rank."""
    rating_mu: float
    rating_sigma: float
    rating_lo: float
    rating_hi: float
    p_best: float
    """Probability this agent is the best one; across agents these sum to 1."""
    faults: int
    accepted: int
    clamped: int
    rejected: int
    decision_ms: float
    """Mean over tournaments of the mean wall time per decision, in milliseconds."""


def leaderboard(
    results: Sequence[TournamentResult], *, seed: int = 0, n_resamples: int = 2000
) -> list[AgentStanding]:
    """Summarise ``results`` per agent, best first; the same inputs and seed give the same table.

    Results may come in any order (the runner yields them in completion order); they are
    processed in tournament-index order, and an index seen twice is an error, so nothing is
    counted twice.

    Ordering and P(best) follow the design. When every agent played every tournament (``ffa``)
    agents met the same populations, so mean objective is the direct, unit-bearing answer: the
    table is sorted by it and P(best) is the share of tournament-bootstrap resamples in which
    the agent's mean objective is highest. When agents played different sets of tournaments
    (``round_robin`` pairs) their means rest on different draws and opponents; OpenSkill
    ratings put pairwise outcomes on one scale, so the table is sorted by rating mu and P(best)
    is the share of draws from N(mu, sigma) per agent in which the agent's draw is highest.

    Args:
        results: per-tournament outcomes; the control arm is not counted as an agent.
        seed: seeds every bootstrap and P(best) draw.
        n_resamples: bootstrap resamples (and rating draws for P(best)).

    Raises:
        ValueError: for a repeated tournament index or a non-finite agent objective.
    """
    ordered = _checked(results)
    if not ordered:
        return []
    names = _agent_order(ordered)
    complete = all(len(r.agents) == len(names) for r in ordered)
    ratings = _openskill(ordered, names)
    if complete:
        objective = np.array([[r.objective[n] for n in names] for r in ordered])
        p_best = _p_best_bootstrap(objective, _rng(seed, 1), n_resamples)
    else:
        mu = np.array([ratings[n][0] for n in names])
        sigma = np.array([ratings[n][1] for n in names])
        p_best = _p_best_rating(mu, sigma, _rng(seed, 2), n_resamples)
    standings = [
        _standing(name, ordered, ratings[name], float(p), _rng(seed, 0, name), n_resamples)
        for name, p in zip(names, p_best, strict=True)
    ]

    def key(s: AgentStanding) -> tuple[float, str]:
        score = s.objective if complete else s.rating_mu
        return (-score if math.isfinite(score) else math.inf, s.name)

    return sorted(standings, key=key)


def format_leaderboard(standings: Sequence[AgentStanding]) -> str:
    """A fixed-width text table of ``standings`` in the given order, for the end of a run."""
    if not standings:
        return "no finished tournaments: nothing to rank"
    header = [
        "#",
        "agent",
        "n",
        "objective [95% CI]",
        "lift [95% CI]",
        "regret [95% CI]",
        "win",
        "rank",
        "rating mu ± sigma",
        "P(best)",
        "faults",
    ]
    rows = [
        [
            str(i),
            s.name,
            str(s.n),
            _with_ci(s.objective, s.objective_lo, s.objective_hi),
            _with_ci(s.lift, s.lift_lo, s.lift_hi),
            _with_ci(s.regret, s.regret_lo, s.regret_hi),
            f"{s.win_rate:.0%}",
            f"{s.mean_rank:.2f}",
            f"{s.rating_mu:.1f} ± {s.rating_sigma:.1f}",
            f"{s.p_best:.3f}",
            str(s.faults),
        ]
        for i, s in enumerate(standings, start=1)
    ]
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    left = {1}  # the agent name reads best left-aligned; numbers line up on the right

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if c in left else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def usage_totals(results: Sequence[TournamentResult], name: str) -> dict[str, float]:
    """An agent's usage counters summed over tournaments, plus per-call latency and the
    cache hit rate when it reports model calls."""
    totals: dict[str, float] = {}
    for r in results:
        for key, value in r.usage.get(name, {}).items():
            totals[key] = totals.get(key, 0.0) + value
    if "calls" in totals and "cache_hits" in totals:
        asked = totals["calls"] + totals["cache_hits"]
        totals["cache_hit_rate"] = totals["cache_hits"] / asked if asked else math.nan
        if "latency_s" in totals:
            calls = totals["calls"]
            totals["latency_s_per_call"] = totals["latency_s"] / calls if calls else math.nan
    return totals


def format_usage(results: Sequence[TournamentResult]) -> str:
    """One line per agent that reports model usage (empty when none does)."""
    lines = []
    for name in _agent_order(results):
        t = usage_totals(results, name)
        if "calls" not in t:
            continue
        cost = "unknown" if math.isnan(t.get("cost_usd", math.nan)) else f"${t['cost_usd']:.4f}"
        lines.append(
            f"  {name}: {t['calls']:.0f} model calls, {t['cache_hits']:.0f} cache hits, "
            f"{t.get('prompt_tokens', 0):,.0f} prompt + {t.get('completion_tokens', 0):,.0f} "
            f"completion tokens, {t.get('latency_s', 0):.1f} s in the model"
            + (f" ({t['latency_s_per_call']:.2f} s/call)" if t["calls"] else "")
            + f", estimated cost {cost}"
        )
    return "\n".join(["Model usage:", *lines]) if lines else ""


def persona_totals(results: Sequence[TournamentResult], arm: str) -> dict[str, float]:
    """An arm's persona-user totals summed over tournaments, their metrics (``metric_*``)
    averaged (``arm="usage"``: their model use); empty without persona users."""
    sums: dict[str, list[float]] = {}
    for r in results:
        for key, value in r.personas.get(arm, {}).items():
            sums.setdefault(key, []).append(value)
    return {
        k: float(np.mean(v)) if k.startswith("metric_") else math.fsum(v) for k, v in sums.items()
    }


def format_personas(results: Sequence[TournamentResult]) -> str:
    """Per arm, what its LLM persona users did (empty without persona users). They live
    beside the population and are in none of the statistics above."""
    arms = [CONTROL_ARM, *_agent_order(results)]
    lines = []
    for arm in arms:
        t = persona_totals(results, arm)
        if not t.get("days"):
            continue
        days = t["days"]
        lines.append(
            f"  {arm}: {t['users']:.0f} users, opened the app on {t['opened_days'] / days:.0%} "
            f"of {days:.0f} user-days, {t['scans'] / days:.2f} scans and "
            f"{t['feedback'] / days:.2f} feedback a day, {t['quits']:.0f} quit; "
            f"{t['model_days']:.0f} days decided by the model, {t['twin_days']:.0f} by the twin "
            f"({t['faults']:.0f} faults)"
        )
    if not lines:
        return ""
    u = persona_totals(results, "usage")
    cost = "unknown" if math.isnan(u.get("cost_usd", math.nan)) else f"${u['cost_usd']:.4f}"
    lines.append(
        f"  model: {u.get('calls', 0):.0f} calls, {u.get('cache_hits', 0):.0f} cache hits, "
        f"{u.get('prompt_tokens', 0) + u.get('completion_tokens', 0):,.0f} tokens, "
        f"{u.get('latency_s', 0):.1f} s, estimated cost {cost}"
        + (
            f", {u['budget_refused']:.0f} calls refused by the budget"
            if u.get("budget_refused")
            else ""
        )
    )
    return "\n".join(["Persona users (not in the statistics):", *lines])


def standings_records(standings: Sequence[AgentStanding]) -> list[dict[str, Any]]:
    """Flat dicts (leaderboard position as ``rank``, then every field) for CSV, JSON, MLflow."""
    return [{"rank": i, **asdict(s)} for i, s in enumerate(standings, start=1)]


def _checked(results: Sequence[TournamentResult]) -> list[TournamentResult]:
    """Results in index order, refusing duplicates and non-finite agent objectives."""
    ordered = sorted(results, key=lambda r: r.index)
    for prev, cur in pairwise(ordered):
        if prev.index == cur.index:
            raise ValueError(f"tournament index {cur.index} appears twice in the results")
    for r in ordered:
        for name in r.agents:
            if not math.isfinite(r.objective[name]):
                raise ValueError(
                    f"tournament {r.index}: objective of agent {name!r} is {r.objective[name]}"
                )
    return ordered


def _agent_order(results: Sequence[TournamentResult]) -> list[str]:
    """Agent names by first appearance, so the order (and every seeded draw) is reproducible."""
    return list(dict.fromkeys(n for r in results for n in r.agents))


def _rng(seed: int, stream: int, name: str = "") -> np.random.Generator:
    """An independent generator per purpose and agent: one agent's CI does not depend on who
    else played."""
    return np.random.default_rng([seed, stream, zlib.crc32(name.encode())])


def _ranks(result: TournamentResult) -> dict[str, float]:
    """Rank of each agent by objective within one tournament; 1 = best, ties share the mean."""
    ranks = rankdata([-result.objective[n] for n in result.agents], method="average")
    return {n: float(r) for n, r in zip(result.agents, ranks, strict=True)}


def _win_shares(result: TournamentResult) -> dict[str, float]:
    """1 for the sole best agent, 1/k each for k tied at the top, 0 for the rest."""
    best = max(result.objective[n] for n in result.agents)
    winners = [n for n in result.agents if result.objective[n] == best]
    return {n: (1.0 / len(winners) if n in winners else 0.0) for n in result.agents}


def _openskill(
    results: Sequence[TournamentResult], names: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """(mu, sigma) per agent after one free-for-all match per tournament, in index order."""
    model = PlackettLuce()
    ratings = {n: model.rating(name=n) for n in names}
    for r in results:
        if len(r.agents) < 2:  # a match of one carries no comparison
            continue
        ranks = _ranks(r)
        teams = model.rate([[ratings[n]] for n in r.agents], ranks=[ranks[n] for n in r.agents])
        for n, (rating,) in zip(r.agents, teams, strict=True):
            ratings[n] = rating
    return {n: (float(ratings[n].mu), float(ratings[n].sigma)) for n in names}


def _best_shares(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per column, the mean over rows of its share of the row maximum; shape (rows, cols)."""
    is_best = scores == scores.max(axis=1, keepdims=True)
    shares: npt.NDArray[np.float64] = (is_best / is_best.sum(axis=1, keepdims=True)).mean(axis=0)
    return shares


def _p_best_bootstrap(
    objective: npt.NDArray[np.float64], rng: np.random.Generator, n_resamples: int
) -> npt.NDArray[np.float64]:
    """P(best) by resampling tournaments; ``objective`` has shape (tournaments, agents).

    Multinomial counts stand in for resampled indices: the same bootstrap, without a
    (resamples, tournaments, agents) array.
    """
    t = objective.shape[0]
    counts = rng.multinomial(t, np.full(t, 1.0 / t), size=n_resamples)
    return _best_shares(counts @ objective / t)


def _p_best_rating(
    mu: npt.NDArray[np.float64],
    sigma: npt.NDArray[np.float64],
    rng: np.random.Generator,
    n_resamples: int,
) -> npt.NDArray[np.float64]:
    """P(best) from independent N(mu, sigma) skill draws per agent; shapes (agents,)."""
    return _best_shares(rng.normal(mu, sigma, size=(n_resamples, mu.size)))


def _mean_ci(
    values: list[float], rng: np.random.Generator, n_resamples: int
) -> tuple[float, float, float]:
    """Bootstrap mean and 95 % CI, ignoring nan (regret is nan where it was not computed)."""
    arr = np.asarray(values, dtype=np.float64)
    return bootstrap_mean_ci(arr[~np.isnan(arr)], rng, n_resamples)


def _standing(
    name: str,
    results: Sequence[TournamentResult],
    rating: tuple[float, float],
    p_best: float,
    rng: np.random.Generator,
    n_resamples: int,
) -> AgentStanding:
    played = [r for r in results if name in r.agents]
    obj = _mean_ci([r.objective[name] for r in played], rng, n_resamples)
    lift = _mean_ci([r.lift[name] for r in played], rng, n_resamples)
    regret = _mean_ci([r.regret[name] for r in played], rng, n_resamples)
    mu, sigma = rating

    def guardrail(key: str) -> int:
        return sum(int(r.guardrails.get(name, {}).get(key, 0)) for r in played)

    return AgentStanding(
        name=name,
        n=len(played),
        objective=obj[0],
        objective_lo=obj[1],
        objective_hi=obj[2],
        lift=lift[0],
        lift_lo=lift[1],
        lift_hi=lift[2],
        regret=regret[0],
        regret_lo=regret[1],
        regret_hi=regret[2],
        win_rate=float(np.mean([_win_shares(r)[name] for r in played])),
        mean_rank=float(np.mean([_ranks(r)[name] for r in played])),
        rating_mu=mu,
        rating_sigma=sigma,
        rating_lo=mu - _Z95 * sigma,
        rating_hi=mu + _Z95 * sigma,
        p_best=p_best,
        faults=sum(len(r.faults.get(name, [])) for r in played),
        accepted=guardrail("accepted"),
        clamped=guardrail("clamped"),
        rejected=guardrail("rejected"),
        decision_ms=float(np.mean([r.decision_ms.get(name, math.nan) for r in played])),
    )


def _with_ci(mean: float, lo: float, hi: float) -> str:
    """``mean [lo, hi]`` in 4 significant digits; ``-`` for a missing value or interval."""
    if math.isnan(mean):
        return "-"
    if math.isnan(lo) or math.isnan(hi):
        return f"{mean:.4g}"
    return f"{mean:.4g} [{lo:.4g}, {hi:.4g}]"
