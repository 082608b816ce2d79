"""Evaluate strategies: one free-for-all experiment per seed, every agent in its own arm.

    python scripts/eval_agents.py --agents control random ucb oracle --seeds 20

Agents are composed from ``conf/agents/<name>.yaml`` exactly as the tournament will. All arms
share one population sample per seed, so differences are paired. Prints per agent: mean
objective with a 95 % CI, lift vs the control arm, regret vs ``oracle`` (paired, when oracle
runs), and the time per decide() call; then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import stats

from arena_rl.config import agent_configs, build_agent
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.experiment import run_experiment


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval."""
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--users-per-arm", type=int, default=2000)
    parser.add_argument("--population", default="default")
    args = parser.parse_args()

    configs = agent_configs(args.agents)
    names = list(configs)
    n_users = args.users_per_arm * (len(names) + 1)
    objective = {n: [] for n in [CONTROL_ARM, *names]}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        agents = {n: build_agent(n, configs[n]) for n in names}
        result = run_experiment(agents, seed=seed, population=args.population, n_users=n_users)
        for arm, value in result.objective.items():
            objective[arm].append(value)
        for n in names:
            seconds[n] += result.decision_seconds[n]
        print(f"  seed {seed}: " + ", ".join(f"{a} {v:.2f}" for a, v in result.objective.items()))
    values = {a: np.asarray(v) for a, v in objective.items()}

    print(f"\n{args.seeds} seeds, {args.users_per_arm} users per arm, population "
          f"{args.population!r}, {time.perf_counter() - started:.0f} s")  # fmt: skip
    print(f"{'agent':<12}{'objective':>18}{'lift vs control':>18}{'regret vs oracle':>18}"
          f"{'ms/decide':>11}{'max ms':>9}")  # fmt: skip
    summary = {}
    for arm, v in values.items():
        mean, half = mean_ci(v)
        lift, lift_half = mean_ci(v - values[CONTROL_ARM]) if arm != CONTROL_ARM else (0.0, 0.0)
        regret = mean_ci(values["oracle"] - v) if "oracle" in values else (float("nan"), 0.0)
        ms = np.asarray(seconds.get(arm, [0.0])) * 1000
        summary[arm] = {"objective": mean, "objective_ci": half, "lift": lift,
                        "lift_ci": lift_half, "regret": regret[0], "regret_ci": regret[1],
                        "ms_per_decide": float(ms.mean()), "max_ms": float(ms.max())}  # fmt: skip
        row = f"{arm:<12}{mean:>10.2f} ± {half:<5.2f}{lift:>+10.2f} ± {lift_half:<5.2f}"
        row += f"{regret[0]:>10.2f} ± {regret[1]:<5.2f}{ms.mean():>11.2f}{ms.max():>9.1f}"
        print(row)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
