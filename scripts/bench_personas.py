"""What LLM persona users cost a tournament: wall time without them, with a cold answer cache
(every day a model call) and with a warm one (a rerun: every answer from the cache).

Usage: ``python scripts/bench_personas.py [--days 28] [--per-arm 5] [--repeats 3]``

One agent (``rule``) plus control, 2,000 users, in this process, on the local model (the
default backend). Prints the median wall time of each case, the cold cache's model decisions
per second, and the warm case's ratio to the plain tournament (the target: at most 2x).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from agents.rule import RuleBased
from arena_rl.experiment import ExperimentResult, run_experiment
from arena_rl.personas.users import PersonaUsersConfig


def play(days: int, personas: PersonaUsersConfig | None) -> tuple[float, ExperimentResult]:
    started = time.perf_counter()
    result = run_experiment(
        {"rule": RuleBased()}, seed=0, n_users=2000, days=days, persona_users=personas
    )
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--per-arm", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the plain and warm cases")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        llm = {"cache_path": str(Path(tmp) / "answers.sqlite")}
        config = PersonaUsersConfig.parse({"per_arm": args.per_arm, "llm": llm})
        play(2, None)  # imports and first-use costs, outside every figure
        plain = statistics.median(play(args.days, None)[0] for _ in range(args.repeats))
        print(f"{args.days}-day tournament, rule + control, 2,000 users, in process")
        print(f"  without persona users: {plain:.2f} s (median of {args.repeats})")
        cold_s, cold = play(args.days, config)
        usage = cold.personas["usage"]
        model_s = usage["latency_s"]
        print(
            f"  {args.per_arm} persona users per arm, cold cache: {cold_s:.1f} s, "
            f"{usage['calls']:.0f} model calls, {usage['calls'] / cold_s:.2f} decisions/s "
            f"({model_s / max(usage['calls'], 1):.2f} s per call in the model), "
            f"{usage['prompt_tokens'] + usage['completion_tokens']:,.0f} tokens"
        )
        twin = sum(t.get("twin_days", 0) for k, t in cold.personas.items() if k != "usage")
        print(f"    days the twin decided (failed or invalid answers): {twin:.0f}")
        warm = statistics.median(play(args.days, config)[0] for _ in range(args.repeats))
        print(
            f"  {args.per_arm} persona users per arm, warm cache: {warm:.2f} s "
            f"(median of {args.repeats}): {warm / plain:.2f}x the plain tournament "
            "(target: at most 2x)"
        )


if __name__ == "__main__":
    main()
