"""Benchmark: step the pricing scenario's customers alone (no agents) and print customer-days
per second.

Usage: ``python scripts/bench_pricing.py [--repeats 5] [--sizes 10000 100000 1000000]``

Runs in one process on one core. Each run is the default preset over the scenario's whole
horizon (prospects arriving over the first weeks, trials, renewals); a customer-day is one
arrived prospect simulated for one day, so prospects yet to arrive do not count. Figures are
medians over the repeats (seeds). Prints a table; at the reference size, the rate with the
offer changing every day (as in a tournament), with the daily summaries and signals an agent
reads, and the peak memory a step allocates; then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

from arena_rl.scenarios.pricing import PricingScenario
from arena_rl.scenarios.pricing.population import Customers
from arena_rl.scenarios.pricing.specs import load_population

N_ARMS = 5  # control + 4 treatment variants, the live platform's maximum
SCENARIO = PricingScenario()


def tables(days: int, changing: bool) -> list[np.ndarray]:
    """Every arm's offer on each day: the base offer, or (``changing``) each knob a step up,
    level or down, cycling by day and arm (5 % for shares and prices, a day or a month for
    integer knobs)."""
    knobs, base = SCENARIO.knobs, SCENARIO.base_economy()
    out = []
    for day in range(days):
        rows = []
        for arm in range(N_ARMS):
            step = ((day + arm) % 3 - 1) if changing else 0
            offer = {
                k: v + step if k in knobs.integer else v * (1 + 0.05 * step)
                for k, v in base.items()
            }
            rows.append(knobs.clipped(offer))
        out.append(knobs.array(rows))
    return out


def measure(n_users: int, repeats: int, *, changing: bool = False, read: bool = False) -> float:
    """Median over ``repeats`` seeds of arrived customer-days per second over the horizon.

    ``read``: also summarise and build every arm's signals each day, as the experiment core
    does for its agents.
    """
    spec = load_population("pricing")
    days = SCENARIO.days
    offers = tables(days, changing)
    rates = []
    for seed in range(repeats):
        model = Customers(spec, N_ARMS, seed, n_users)
        customer_days = 0
        start = time.perf_counter()
        for day in range(days):
            outcome = model.step(offers[day])
            customer_days += int(outcome.enrolled.sum())
            if read:
                model.signals(model.summarise())
        rates.append(customer_days / (time.perf_counter() - start))
    return float(np.median(rates))


def peak_step_bytes_per_customer(n_users: int) -> tuple[float, float]:
    """Peak memory one step allocates (the busiest day of the first week, day 7, when the
    first week's trials end), per customer; and bytes of state kept per customer."""
    model = Customers(load_population("pricing"), N_ARMS, 0, n_users)
    offers = tables(8, changing=False)
    for day in range(7):
        model.step(offers[day])
    tracemalloc.start()
    model.step(offers[7])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = model.users_per_arm * N_ARMS
    return peak / n, model.state_nbytes() / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    print(f"{SCENARIO.days} days, {N_ARMS} arms, default preset")
    print(f"{'customers':>10}  {'customer-days/s':>16}  {'ns/customer-day':>15}")
    results = {}
    for n in args.sizes:
        results[n] = measure(n, args.repeats)
        print(f"{n:>10,}  {results[n]:>16,.0f}  {1e9 / results[n]:>15.1f}")
    reference = 100_000 if 100_000 in results else args.sizes[0]
    rate = results[reference]
    changing = measure(reference, args.repeats, changing=True)
    reading = measure(reference, args.repeats, read=True)
    peak, kept = peak_step_bytes_per_customer(reference)
    print(f"\nat {reference:,} customers:")
    print(f"  offer changing every day   {changing:>14,.0f} customer-days/s")
    print(f"  with summaries and signals {reading:>14,.0f} customer-days/s")
    print(f"  a step's peak allocation is {peak:.1f} bytes per customer on top of {kept:.0f} kept")
    print(json.dumps({
        "customer_days_per_s": round(rate),
        "customers": reference,
        "by_size": {str(n): round(r) for n, r in results.items()},
        "changing_offer_customer_days_per_s": round(changing),
        "with_signals_customer_days_per_s": round(reading),
        "peak_step_bytes_per_customer": round(peak, 1),
        "bytes_per_customer": round(kept, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
