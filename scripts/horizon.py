"""The leaderboard at several horizons: does a longer experiment change who wins?

Rewards settle one to two weeks after a change, so a 28-day experiment leaves a learning agent
two or three informative moves. This plays the same lineup, free for all, on the same seeds at
each horizon and prints each agent's lift over control and regret against the ground-truth
plan (objective per enrolled user, the value after the horizon included), per horizon, with
95 % CIs over seeds, and saves the plot.

    python scripts/horizon.py --days 28 56 90 --seeds 12 --out horizon.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import stats

from arena_rl.config import agent_configs, build_agent
from arena_rl.core.ground_truth import plan_value
from arena_rl.experiment import run_experiment
from arena_rl.scenarios import load_population, load_scenario


def ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and 95 % t-interval half-width over seeds."""
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(  # random's tail spans ±50: add it on the command line if wanted
        "--agents", nargs="+", default=["ucb", "thompson", "bayesopt", "hedge", "oracle"]
    )
    parser.add_argument("--days", type=int, nargs="+", default=[28, 56, 90])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--users-per-arm", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("horizon.png"))
    args = parser.parse_args()

    scenario = load_scenario()
    population = load_population(scenario)
    configs = agent_configs(args.agents)
    n_users = (len(args.agents) + 1) * args.users_per_arm
    table: dict[int, dict[str, dict[str, tuple[float, float]]]] = {}
    started = time.perf_counter()
    for days in args.days:
        best, _ = plan_value(population, scenario, days)
        lift = {name: [] for name in args.agents}
        regret = {name: [] for name in args.agents}
        for seed in range(args.seeds):
            agents = {name: build_agent(name, configs[name]) for name in args.agents}
            result = run_experiment(agents, seed=seed, n_users=n_users, days=days)
            for name in args.agents:
                lift[name].append(result.lift(name))
                regret[name].append(best - result.objective[name])
        table[days] = {
            name: {"lift": ci(np.array(lift[name])), "regret": ci(np.array(regret[name]))}
            for name in args.agents
        }
        ranked = sorted(args.agents, key=lambda n: -table[days][n]["lift"][0])
        print(f"\n{days} days ({args.seeds} seeds, {args.users_per_arm} users per arm, "
              f"plan value {best:.2f}; {time.perf_counter() - started:.0f} s so far)")  # fmt: skip
        print(f"{'agent':<10}{'lift':>16}{'regret':>16}{'lift/day':>10}")
        for name in ranked:
            (lm, lh), (rm, rh) = table[days][name]["lift"], table[days][name]["regret"]
            print(f"{name:<10}{lm:>+9.2f} ± {lh:4.2f}{rm:>9.2f} ± {rh:4.2f}{lm / days:>10.3f}")
        print("rank: " + " > ".join(ranked))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in args.agents:
        for ax, key in zip(axes, ("lift", "regret"), strict=True):
            means = [table[d][name][key][0] for d in args.days]
            halves = [table[d][name][key][1] for d in args.days]
            ax.errorbar(args.days, means, yerr=halves, marker="o", capsize=3, label=name)
    axes[0].set(title="lift over control", xlabel="horizon, days", ylabel="objective per user")
    axes[1].set(title="regret against the plan", xlabel="horizon, days")
    axes[0].axhline(0, color="grey", lw=0.5)
    axes[1].legend(fontsize=8)
    fig.suptitle("The leaderboard at each horizon (value after the horizon included)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"\nplot: {args.out}")


if __name__ == "__main__":
    main()
