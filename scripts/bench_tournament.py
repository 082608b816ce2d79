"""Benchmark the tournament runner: throughput on 1 and 2 Ray workers, and overheads.

    python scripts/bench_tournament.py                        # 32 ffa tournaments of ~0.3 s
    python scripts/bench_tournament.py --users-per-arm 2000   # ~0.06 s tournaments
    python scripts/bench_tournament.py --split                # where a command's time goes

``--split`` runs the tournament command as a user types it (``SPLIT_COMMAND``) in a fresh
folder with an empty cache, then reruns it, then reruns it with ``ray.num_workers=0``, and
prints each run's wall time and the split the command itself reports (start-up, ground truth,
checks, Ray start, workers' start, playing, leaderboard, MLflow, Ray shutdown), with the load
average at the time.

Tournaments are ffa, rule+ucb+random, 28 days, without regret (its ground-truth search is a
one-off of seconds per worker process, not throughput).

Prints tournaments/s with 1 and 2 workers (end to end, and steady: without the workers'
start-up), the scaling efficiency tps2 / (2 tps1), the Ray overhead (the share of worker
capacity not spent inside ``play_tournament``: 1 - sum(play) / (workers * wall)), and the
MLflow overhead (logging the 2-worker run with ``tracking.log_tournament_run`` into a fresh
SQLite store, over the run's wall time plus the logging). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
import yaml
from mlflow.tracking import MlflowClient

from arena_rl.config import build_agent
from arena_rl.scenarios import load_population, load_scenario
from arena_rl.scenarios.specs import CONF_DIR
from arena_rl.tournament import ratings, runner, tracking
from arena_rl.tournament.play import TournamentSpec


def make_specs(args: argparse.Namespace) -> list[TournamentSpec]:
    agents = {
        name: yaml.safe_load((CONF_DIR / "agents" / f"{name}.yaml").read_text())
        for name in args.agents
    }
    scenario = load_scenario()
    population = load_population(scenario)
    n_users = args.users_per_arm * (len(agents) + 1)  # + control
    seeds = np.random.SeedSequence(args.seed).spawn(args.tournaments)
    return [
        TournamentSpec(
            i, int(s.generate_state(1)[0]), agents, population, scenario, n_users, args.days
        )
        for i, s in enumerate(seeds)
    ]


def timed_run(specs: list[TournamentSpec], workers: int, out: Path) -> dict[str, float]:
    outcome = runner.run_tournaments(
        specs, out, build_agent, num_workers=workers, progress=False, with_regret=False
    )
    assert not outcome.failed and len(outcome.results) == len(specs), outcome.failed
    n, wall = len(specs), outcome.wall_s
    figures = {
        "wall_s": wall,
        "startup_s": outcome.startup_s,
        "play_s_per_tournament": outcome.play_s / n,
        "tournaments_per_s": n / wall,
        "tournaments_per_s_steady": n / (wall - outcome.startup_s),
        "ray_overhead": 1 - outcome.play_s / (workers * wall),
        "ray_overhead_steady": 1 - outcome.play_s / (workers * (wall - outcome.startup_s)),
    }
    print(
        f"{workers} worker(s): {n} tournaments in {wall:.2f} s "
        f"({figures['tournaments_per_s']:.2f}/s; {figures['tournaments_per_s_steady']:.2f}/s "
        f"after {outcome.startup_s:.2f} s of worker start-up); "
        f"{figures['play_s_per_tournament'] * 1000:.0f} ms of play each; "
        f"Ray overhead {figures['ray_overhead']:.1%} ({figures['ray_overhead_steady']:.1%} steady)"
    )
    return figures


def time_mlflow(specs: list[TournamentSpec], out: Path, tmp: Path) -> tuple[float, float]:
    """Seconds to log the finished run (and, apart, to create the fresh SQLite store)."""
    results = [r for _, r in sorted(runner.ResultStore(out).load(specs).items())]
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    started = time.perf_counter()
    MlflowClient(uri).search_experiments()  # migrations: once per store, not per run
    create_s = time.perf_counter() - started
    standings = ratings.standings_records(ratings.leaderboard(results, seed=0))
    started = time.perf_counter()
    tracking.log_tournament_run(
        tracking_uri=uri,
        experiment="bench",
        run_name="bench",
        config={"bench": True, "n_tournaments": len(specs)},
        agent_params={n: dict(c) for n, c in specs[0].agents.items()},
        results=results,
        standings=standings,
        tags={"git_commit": "bench", "root_seed": "0"},
        out_dir=tmp / "run_files",
    )
    return time.perf_counter() - started, create_s


SPLIT_COMMAND = [
    "+agents=[ucb,thompson,rule,pid]",
    "tournament.n_tournaments=4",
    "population.n_users=10000",
    "tournament.days=60",
    "progress=false",
]
"""The command whose wall time ``--split`` takes apart (researchers rerun it all day)."""


def command_split(repeats: int) -> None:
    """Run the command as a user would and print where its wall time went."""
    script = Path(__file__).resolve().parent / "tournament.py"
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        env = {**os.environ, "ARENA_RL_CACHE": str(folder / "cache"), "PYTHONUNBUFFERED": "1"}
        runs = [("first run: fresh folder, empty cache", [])]
        runs += [("rerun", [])] * repeats + [("rerun, ray.num_workers=0", ["ray.num_workers=0"])]
        for label, extra in runs:
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, str(script), *SPLIT_COMMAND, *extra],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"{label} failed:\n{done.stderr[-2000:]}")
            split = next(line for line in done.stdout.splitlines() if line.startswith("time:"))
            load = os.getloadavg()[0]
            print(f"{label}: {wall:.1f} s wall (load {load:.2f})\n    {split}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", action="store_true", help="take a command's time apart")
    parser.add_argument("--repeats", type=int, default=2, help="--split: reruns")
    parser.add_argument("--tournaments", type=int, default=32)
    parser.add_argument("--agents", nargs="+", default=["rule", "ucb", "random"])
    parser.add_argument("--users-per-arm", type=int, default=25000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.split:
        command_split(args.repeats)
        return
    specs = make_specs(args)
    print(
        f"{args.tournaments} ffa tournaments: {'+'.join(args.agents)}, "
        f"{args.users_per_arm} users/arm, {args.days} days"
    )
    runner.connect(None, 2)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        one = timed_run(specs, 1, tmp / "one")
        two = timed_run(specs, 2, tmp / "two")
        mlflow_s, create_s = time_mlflow(specs, tmp / "two", tmp)
    ray.shutdown()
    efficiency = two["tournaments_per_s"] / (2 * one["tournaments_per_s"])
    steady = two["tournaments_per_s_steady"] / (2 * one["tournaments_per_s_steady"])
    mlflow_overhead = mlflow_s / (two["wall_s"] + mlflow_s)
    print(f"scaling efficiency {efficiency:.2f} end to end, {steady:.2f} steady")
    print(
        f"MLflow: {mlflow_s:.2f} s to log the run = {mlflow_overhead:.1%} of its wall time "
        f"(+{create_s:.2f} s once, creating the fresh SQLite store)"
    )
    summary: dict[str, Any] = {
        "tournaments": args.tournaments,
        "tournaments_per_s_1": one["tournaments_per_s"],
        "tournaments_per_s_2": two["tournaments_per_s"],
        "tournaments_per_s_1_steady": one["tournaments_per_s_steady"],
        "tournaments_per_s_2_steady": two["tournaments_per_s_steady"],
        "scaling_efficiency": efficiency,
        "scaling_efficiency_steady": steady,
        "play_s_per_tournament_1": one["play_s_per_tournament"],
        "play_s_per_tournament_2": two["play_s_per_tournament"],
        "ray_overhead_1": one["ray_overhead"],
        "ray_overhead_2": two["ray_overhead"],
        "mlflow_s": mlflow_s,
        "mlflow_overhead": mlflow_overhead,
    }
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}))


if __name__ == "__main__":
    main()
