"""Benchmark the LLM agent: decisions/s on the local model (cold and from the cache), and the
share of a ``+agents=[ucb,llm]`` tournament's wall time spent in the model.

    python scripts/bench_llm.py                  # 12 questions, 2 tournaments, default settings
    python scripts/bench_llm.py --questions 24 --tournaments 4 --threads 1

Runs in one process on a fresh cache in a temporary folder (your own cache is not touched).
Prints a table, then the figures as JSON on the last line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from agents.llm import LLMAgent
from arena_rl.agent import VariantInfo
from arena_rl.config import build_agent, compose_config, settings_from
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.llm.cache import CACHE_ENV
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.tournament.play import play_tournament


def questions(n: int, seed: int = 1) -> list[Signals]:
    """Distinct signals (different days and levels), so no two prompts are the same."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        enrolled = int(rng.integers(200, 3000))
        active = int(enrolled * rng.uniform(0.2, 0.7))
        metrics = {
            m: MetricValue(float(rng.uniform(0.1, 5)), float(rng.uniform(0.1, 2)), active, "high")
            for m in METRICS
        }
        out.append(Signals(enrolled, active, int(active * 1.4), active * 3, i + 1, metrics))
    return out


def decisions_per_second(cache: Path, n: int, threads: int | None) -> dict[str, float]:
    """Ask ``n`` questions twice: on an empty cache, then (a new agent) from the cache."""
    figures: dict[str, float] = {}
    for phase in ("cold", "warm"):
        agent = LLMAgent(cache_path=str(cache), decide_every_days=1, n_threads=threads)
        agent.reset(VariantInfo.of("v"), np.random.default_rng(0))
        warmup = dataclasses.replace(questions(1, seed=99)[0], experiment_days=0)
        agent.decide(warmup, DEFAULT_ECONOMY)  # loads the model; untimed
        start_usage = agent.usage()
        started = time.perf_counter()
        for signals in questions(n):
            agent.decide(signals, DEFAULT_ECONOMY)
        seconds = time.perf_counter() - started
        usage = {k: v - start_usage[k] for k, v in agent.usage().items()}
        figures[f"{phase}_decisions_per_s"] = n / seconds
        figures[f"{phase}_model_calls"] = usage["calls"]
        if phase == "cold":
            figures["cold_s_per_decision"] = seconds / n
            figures["prompt_tokens_per_call"] = usage["prompt_tokens"] / n
            figures["completion_tokens_per_call"] = usage["completion_tokens"] / n
            figures["usable_share"] = (usage["clean"] + usage["repaired"]) / usage["answers"]
    return figures


def tournament_share(n: int, overrides: list[str]) -> dict[str, float]:
    """Play ``n`` tournaments of ucb vs llm in this process (cold cache), then again (warm)."""
    settings = settings_from(
        compose_config(["+agents=[ucb,llm]", f"tournament.n_tournaments={n}", *overrides])
    )
    figures: dict[str, float] = {}
    for phase in ("cold", "warm"):
        wall = model = 0.0
        calls = 0.0
        for spec in settings.specs:
            started = time.perf_counter()
            result = play_tournament(spec, build_agent)
            wall += time.perf_counter() - started
            model += result.usage["llm"]["latency_s"]
            calls += result.usage["llm"]["calls"]
        figures[f"{phase}_tournament_s"] = wall / n
        figures[f"{phase}_llm_share"] = model / wall
        figures[f"{phase}_llm_calls_per_tournament"] = calls / n
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--tournaments", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("overrides", nargs="*", help="tournament config overrides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[CACHE_ENV] = str(Path(tmp) / "tournaments.sqlite")
        figures = decisions_per_second(Path(tmp) / "questions.sqlite", args.questions, args.threads)
        figures |= tournament_share(args.tournaments, args.overrides)
    print(f"{'figure':<34}{'value':>12}")
    for key, value in figures.items():
        print(f"{key:<34}{value:>12.4g}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
