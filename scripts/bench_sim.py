"""Benchmark: step the synthetic population alone (no agents) and print user-days per second.

Usage: ``python scripts/bench_sim.py [--days 20] [--repeats 3] [--sizes 10000 100000 1000000]``

Runs in one process on one core (NumPy's element-wise kernels are single-threaded). Every user
is enrolled from day 0 so each day touches all of them. Figures are medians over the repeats.
Prints a table; at the reference size, the rate with the economy changing every day (as in a
tournament) and the peak memory a step allocates; then the experiment core's whole day
(population, signals, harm checks) with no subscriber, with one of day events and with one of
user-level events; then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import tracemalloc
from collections.abc import Sequence

import numpy as np

from arena_rl.core.events import Event
from arena_rl.core.experiment import CONTROL_ARM, ExperimentCore
from arena_rl.core.guardrails import GuardrailConfig
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, economy_array
from arena_rl.scenarios.gamification.population import Population
from arena_rl.scenarios.gamification.specs import load_population

N_ARMS = 5  # control + 4 treatment variants, the live platform's maximum


def measure(
    n_users: int, days: int, repeats: int, *, changing: bool = False
) -> tuple[float, float]:
    """Median over ``repeats`` of user-days/s over ``days`` days, and bytes of state per user.

    ``changing``: a different economy every day (as in tournaments, where agents move theirs),
    so the economy's cached response is rebuilt each day.
    """
    spec = dataclasses.replace(load_population("default"), initial_share=1.0, enrol_days=0)

    def table(day: int) -> np.ndarray:
        """Every arm's economy that day: each key 5 % up, level or down, cycling by day (or
        the defaults every day)."""
        if not changing:
            return economy_array([DEFAULT_ECONOMY] * N_ARMS)
        return economy_array(
            [
                {k: v * (1 + 0.05 * ((day + arm) % 3 - 1)) for k, v in DEFAULT_ECONOMY.items()}
                for arm in range(N_ARMS)
            ]
        )

    tables = [table(day) for day in range(days + 1)]
    rates = []
    for seed in range(repeats):
        pop = Population(spec, load_scenario("default"), n_arms=N_ARMS, seed=seed, n_users=n_users)
        pop.step(tables[0])  # first day builds the economy cache; time steady state
        start = time.perf_counter()
        for day in range(days):
            pop.step(tables[day + 1])
        rates.append(pop.users_per_arm * N_ARMS * days / (time.perf_counter() - start))
    return float(np.median(rates)), pop.state_nbytes() / (pop.users_per_arm * N_ARMS)


def peak_step_bytes_per_user(n_users: int) -> float:
    """Peak memory allocated during one day's step (NumPy reports to tracemalloc), per user."""
    spec = dataclasses.replace(load_population("default"), initial_share=1.0, enrol_days=0)
    pop = Population(spec, load_scenario("default"), n_arms=N_ARMS, seed=0, n_users=n_users)
    economies = economy_array([DEFAULT_ECONOMY] * N_ARMS)
    pop.step(economies)
    tracemalloc.start()
    pop.step(economies)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / (pop.users_per_arm * N_ARMS)


class _Counter:
    """Counts what it is given (the cheapest consumer that still receives every event)."""

    def __init__(self, user_events: bool) -> None:
        self.user_events, self.events = user_events, 0

    def on_day(self, events: Sequence[Event]) -> None:
        self.events += len(events)


def measure_core(n_users: int, days: int, repeats: int, consumer: _Counter | None) -> float:
    """Median over ``repeats`` of user-days/s of ExperimentCore.step_day."""
    spec = dataclasses.replace(load_population("default"), initial_share=1.0, enrol_days=0)
    arms = [CONTROL_ARM, *(f"variant_{i}" for i in range(1, N_ARMS))]
    rates = []
    for seed in range(repeats):
        subscribers = [consumer] if consumer is not None else []
        core = ExperimentCore(
            spec, load_scenario("default"), arms, seed, n_users, GuardrailConfig(), subscribers
        )
        core.step_day()
        start = time.perf_counter()
        for _ in range(days):
            core.step_day()
        users = core.population.users_per_arm * N_ARMS
        rates.append(users * days / (time.perf_counter() - start))
    return float(np.median(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    print(f"{'users':>10}  {'user-days/s':>14}  {'ns/user-day':>11}  {'bytes/user':>10}")
    results = {}
    for n in args.sizes:
        rate, nbytes = measure(n, args.days, args.repeats)
        results[n] = (rate, nbytes)
        print(f"{n:>10,}  {rate:>14,.0f}  {1e9 / rate:>11.1f}  {nbytes:>10.0f}")
    reference = 100_000 if 100_000 in results else args.sizes[0]
    rate, nbytes = results[reference]
    changing, _ = measure(reference, args.days, args.repeats, changing=True)
    peak = peak_step_bytes_per_user(reference)
    print(f"\nat {reference:,} users: {changing:,.0f} user-days/s with the economy changing every")
    print(f"day ({rate / changing - 1:+.0%} time per user-day); a step's peak allocation is")
    print(f"{peak:.0f} bytes per user on top of the {nbytes:.0f} kept")
    print(f"\nexperiment core, one whole day at {reference:,} users:")
    core = {}
    for label, consumer in (
        ("no subscriber", None),
        ("day events", _Counter(user_events=False)),
        ("user-level events", _Counter(user_events=True)),
    ):
        core[label] = measure_core(reference, args.days, args.repeats, consumer)
        print(f"  {label:<18} {core[label]:>14,.0f} user-days/s")
    print(json.dumps({
        "user_days_per_s": round(rate),
        "users": reference,
        "bytes_per_user": round(nbytes, 1),
        "by_size": {str(n): round(r) for n, (r, _) in results.items()},
        "changing_economy_user_days_per_s": round(changing),
        "peak_step_bytes_per_user": round(peak, 1),
        "core_user_days_per_s": {k: round(v) for k, v in core.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
