"""Demo: one seeded experiment on the default population, three variants against control.

The quickest look at the simulator: it runs the PettingZoo environment in-process
for a whole experiment and prints a per-variant table (objective, regret against the best
static economy, key metrics, and lifts vs control with 95 % CIs and Holm-adjusted p-values).

    python scripts/demo.py [--population default] [--users 6000] [--days 28] [--seed 0]

Variants: ``static`` never changes the economy; ``random`` moves every key by a random step
each day; ``best-static`` steps toward the best static economy for this population (ground
truth), under the same guardrails. The agent library's strategies are compared by
``scripts/eval_agents.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

import arena_rl
from agents.common import toward
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.core.ground_truth import best_static_economy, evaluate_economies
from arena_rl.envs.parallel import ArenaParallelEnv

VARIANTS = {"variant_1": "static", "variant_2": "random", "variant_3": "best-static"}
NAMES = {CONTROL_ARM: "control", **VARIANTS}
SHOWN_METRICS = 4
"""The scenario's first metrics, shown per arm."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", default=None, help="default: the scenario's own")
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--users", type=int, default=6000, help="users over all four arms")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env: ArenaParallelEnv = arena_rl.parallel_env(
        n_agents=3, population=args.population, scenario=args.scenario,
        n_users=args.users, days=args.days,
    )  # fmt: skip
    started = time.perf_counter()
    print(f"ground truth: searching the best static economy for {env.spec.name!r} ...")
    horizon = dataclasses.replace(env.scenario, days=args.days)  # type: ignore[type-var]
    optimum = best_static_economy(env.spec, horizon, users_per_arm=3000)
    base = env.scenario.base_economy()
    shown = env.scenario.metrics[:SHOWN_METRICS]
    changed = {k: v for k, v in optimum.economy.items() if v != base[k]}
    print(f"  expected objective: defaults {optimum.default_value:.2f}, best {optimum.value:.2f}")
    print(f"  best static economy differs from the defaults in: {changed}")

    rng = np.random.default_rng(args.seed)
    env.reset(seed=args.seed)
    assert env.guardrails is not None
    while env.agents:
        actions = {
            "variant_1": None,
            "variant_2": rng.uniform(-0.3, 0.3, len(env.scenario.knobs)),
            "variant_3": toward(
                optimum.economy,
                env.guardrails.current_config("variant_3"),
                "step toward the best static economy",
                env.scenario.knobs,
            ),
        }
        env.step(actions)
        if env.population is not None and env.population.day % 7 == 0:
            so_far = ", ".join(f"{NAMES[a]} {v:.2f}" for a, v in env.objective.items())
            print(f"  day {env.population.day:>3}: objective so far: {so_far}")

    assert env.population is not None
    control_value = evaluate_economies(
        [base], env.spec, env.scenario, users_per_arm=3000, days=args.days
    )[0]
    assert env.core is not None
    comparisons = env.core.comparisons()
    by_key = {(c.metric, c.variant): c for c in comparisons}
    print(f"\nexperiment: {args.days} days, {env.population.users_per_arm} users per arm, "
          f"seed {args.seed}, {time.perf_counter() - started:.1f} s")  # fmt: skip
    print(f"expected objective of the best static economy over {args.days} days: "
          f"{optimum.value:.2f} (defaults: {control_value:.2f})\n")  # fmt: skip
    header = f"{'variant':<12}{'objective':>10}{'regret':>8}"
    header += "".join(f"{m.lower():>22}" for m in shown) + "   guardrails (acc/clamp/rej)"
    print(header)
    for arm in env.arms:
        sig = env.signals_of(arm)
        value = env.objective[arm]
        objective, regret = f"{value:.2f}", f"{optimum.value - value:.2f}"
        name, rails = NAMES[arm], ""
        if arm != CONTROL_ARM:
            counts = env.guardrails.counts(arm)
            rails = f"{counts['accepted']}/{counts['clamped']}/{counts['rejected']}"
        row = f"{name:<12}{objective:>10}{regret:>8}"
        for metric in shown:
            value = sig.metrics[metric].value
            cell = f"{value:.3f}"
            if arm != CONTROL_ARM:
                c = by_key[(metric, arm)]
                star = "*" if c.significant else " "
                cell = f"{value:.3f} ({c.effect:+.3f}{star})"
            row += f"{cell:>22}"
        print(row + f"   {rails}")
    print("\n(+x) = lift vs control; * = significant at 5 % after Holm across variants.")
    print("regret = expected objective of the best static economy minus the arm's realised")
    print("objective on this sample (so it carries this sample's noise; compare with control).")


if __name__ == "__main__":
    main()
