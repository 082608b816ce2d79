"""Can the agents' search spaces reach the optimum? Measured on populations drawn from a prior.

For each drawn population: the best static economy (``best_static_economy``), the best of the
arm-based bandits' arms (``ucb``, ``thompson``, ``etc``, ``linucb``: the scenario's default
arm set, plus the base economy they start from), and the best economy inside the Bayesian-
optimisation box (a coordinate search over the box's knobs, the others held at base). Prints
each one's gap to the optimum: what an agent could not earn even if it learnt perfectly.

    python scripts/reach.py --draws 8 --users-per-arm 5000
    python scripts/reach.py --box-floor 0.1   # the box as it was, for comparison
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping

import numpy as np

from agents.arms import resolve_arms
from agents.bayesopt import reference_values, search_box
from arena_rl.core.ground_truth import best_static_economy, evaluate_economies
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.specs import population_from_dict
from arena_rl.scenarios.prior import PopulationPrior
from arena_rl.scenarios.specs import CONF_DIR, read_yaml

GRID = np.linspace(0.0, 1.0, 11)
"""Points across each box side (as a share of the way from its low to its high)."""


def best_in_box(
    population: object,
    scenario: object,
    box: Mapping[str, tuple[float, float]],
    users: int,
    sweeps: int = 3,
) -> float:
    """Coordinate search over the box's knobs (multipliers of the base), others at base."""
    base = scenario.base_economy()  # type: ignore[attr-defined]
    reference = reference_values(base, scenario.knobs)  # type: ignore[attr-defined]
    best = dict(base)
    value = float(evaluate_economies([best], population, scenario, users_per_arm=users)[0])
    for _ in range(sweeps):
        improved = False
        for key, (low, high) in box.items():
            trial = [{**best, key: reference[key] * (low + g * (high - low))} for g in GRID]
            scores = evaluate_economies(trial, population, scenario, users_per_arm=users)
            i = int(np.argmax(scores))
            if scores[i] > value + 1e-9:
                best, value, improved = trial[i], float(scores[i]), True
        if not improved:
            break
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default="prior", help="population file with a prior block")
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--users-per-arm", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--box-floor", type=float, default=None, help="replace the box's low multipliers"
    )
    parser.add_argument(
        "--box", type=json.loads, default=None, help="another box, e.g. '{\"scanXp\": [0.5, 2]}'"
    )
    args = parser.parse_args()

    scenario = load_scenario()
    prior = population_from_dict(
        read_yaml(CONF_DIR / "population" / f"{args.prior}.yaml"), args.prior
    )
    assert isinstance(prior, PopulationPrior)
    base = scenario.base_economy()
    arms = [base, *resolve_arms(None, scenario, base).values()]
    box = search_box(args.box, scenario, base)
    if args.box_floor is not None:
        box = {k: (args.box_floor, high) for k, (_, high) in box.items()}
    users = args.users_per_arm
    seeds = np.random.SeedSequence([args.seed, 7]).spawn(args.draws)
    print(f"{args.draws} populations from the prior {args.prior!r}, {users} users per arm")
    print(f"box: {dict(box)}")
    print(f"{'population':<11}{'optimum':>9}{'arms':>9}{'gap':>7}{'box':>9}{'gap':>7}  zeros")
    gaps: dict[str, list[float]] = {"arms": [], "box": []}
    started = time.perf_counter()
    for k, seq in enumerate(seeds):
        population = prior.draw(seq, k)
        optimum = best_static_economy(population, scenario, users_per_arm=users)
        by_arm = evaluate_economies(arms, population, scenario, users_per_arm=users)
        in_box = best_in_box(population, scenario, box, users)
        zeros = [key for key, v in optimum.economy.items() if v == 0]
        gaps["arms"].append(optimum.value - float(by_arm.max()))
        gaps["box"].append(optimum.value - in_box)
        print(
            f"{population.name:<11}{optimum.value:>9.2f}{by_arm.max():>9.2f}"
            f"{gaps['arms'][-1]:>7.2f}{in_box:>9.2f}{gaps['box'][-1]:>7.2f}  {','.join(zeros)}"
        )
    for name, values in gaps.items():
        print(f"mean gap, {name}: {np.mean(values):.2f} (max {np.max(values):.2f})")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
