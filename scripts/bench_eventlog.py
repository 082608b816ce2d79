"""Benchmark: what keeping an event log costs.

Usage: ``python scripts/bench_eventlog.py [--repeats 5] [--users 20000] [--days 28]``

Prints four figures (medians over the repeats, in one process):

1. **Tournament overhead.** One default tournament (the default population, scenario and
   horizon; agents ucb, thompson, rule and pid), played as a Ray worker plays it (``play_one``,
   the log's tables included), with no log and with the default log (100 users per arm); and
   the driver's encoding of that log as Parquet when it stores it. Runs alternate, so a
   machine that slows down slows both.
2. **User-level event write rate.** Every user's days of a ``--users`` experiment are captured
   first; then a recorder keeping all users takes them, builds its tables and writes them as
   Parquet: user-level events per second over that whole path.

3. **Replay.** 10,000 logged decision points (a default tournament's, repeated with the arms
   renamed) replayed for a cheap policy (the rule agent) in its own process.

4. **Checkpoint size.** What the simulator holds per user at a decision point (population
   arrays and random state, pickled as ``scripts/ope_check.py`` copies them), for each
   scenario, after a few days.

Then one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import statistics
import time
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from agents.rule import RuleBased
from agents.ucb import UCB1
from arena_rl.agent import VariantInfo
from arena_rl.config import build_agent, compose_config, settings_from
from arena_rl.core.events import Event, UserDay
from arena_rl.core.experiment import CONTROL_ARM, ExperimentCore
from arena_rl.core.guardrails import GuardrailConfig
from arena_rl.eventlog.files import to_parquet
from arena_rl.eventlog.recorder import EventLogRecorder
from arena_rl.eventlog.replay import replay
from arena_rl.experiment import run_experiment
from arena_rl.scenarios import load_population, load_scenario
from arena_rl.tournament.runner import play_one

AGENTS = "+agents=[ucb,thompson,rule,pid]"
SCENARIOS = ("default", "pricing")
"""Scenario presets (``conf/scenario/``) whose checkpoint size is measured."""


def tournament_overhead(repeats: int) -> dict[str, float]:
    """Median seconds of one default tournament without and with the default log, as a worker
    plays it, and of the driver's encoding of that log as Parquet (while workers play on)."""
    settings = settings_from(compose_config([AGENTS, "tournament.n_tournaments=1"]))
    logged = settings.specs[0]
    plain = dataclasses.replace(logged, eventlog_users=None)
    times: dict[str, list[float]] = {"off": [], "on": [], "parquet": []}
    for spec in (plain, logged):  # warm: imports (once per process: pyarrow loads pandas
        play_one(spec, build_agent)  # on its first conversion, ~0.3 s), caches
    for _ in range(repeats):
        for name, spec in (("off", plain), ("on", logged)):
            played = play_one(spec, build_agent)
            assert played.error is None, played.error
            times[name].append(played.seconds)
        assert played.eventlog is not None
        started = time.perf_counter()
        to_parquet(played.eventlog)
        times["parquet"].append(time.perf_counter() - started)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    return {"users_per_arm": float(logged.eventlog_users or 0), "off_s": off, "on_s": on,
            "overhead": on / off - 1, "parquet_s": statistics.median(times["parquet"])}  # fmt: skip


class Capture:
    """Keeps every user-level batch."""

    user_events = True

    def __init__(self) -> None:
        self.days: list[UserDay] = []

    def on_day(self, events: Sequence[Event]) -> None:
        self.days += [e for e in events if isinstance(e, UserDay)]


def write_rate(n_users: int, days: int, repeats: int) -> dict[str, float]:
    """User-level events per second: recorder, tables and Parquet, for every user."""
    scenario = load_scenario()
    capture = Capture()
    run_experiment({"ucb": UCB1()}, seed=0, scenario=scenario,
                   population=load_population(scenario), n_users=n_users, days=days,
                   subscribers=[capture])  # fmt: skip
    seconds, n_events = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        recorder = EventLogRecorder(scenario.user_events, users="all")
        for day in capture.days:
            recorder.on_day([day])
        tables = recorder.tables()
        to_parquet(tables)
        seconds.append(time.perf_counter() - started)
        kinds = pa.array([k.name for k in scenario.user_events])
        n_events = int(pc.sum(pc.is_in(tables["events"]["ocel_type"], kinds)).as_py())
    median = statistics.median(seconds)
    return {"user_events": n_events, "seconds": median, "events_per_s": n_events / median}


def replay_speed(n_points: int) -> dict[str, float]:
    """Seconds to replay ``n_points`` decision points for the rule agent."""
    scenario = load_scenario()
    recorder = EventLogRecorder(scenario.user_events, users="none")
    agents = {name: build_agent(name, config) for name, config in _agents().items()}
    run_experiment(agents, seed=0, scenario=scenario, population=load_population(scenario),
                   subscribers=[recorder])  # fmt: skip
    one = recorder.tables()["decisions"]
    copies = []
    for k in range(-(-n_points // len(one))):
        arms = pa.array([f"{arm}#{k}" for arm in one["arm"].to_pylist()])
        copies.append(one.set_column(one.column_names.index("arm"), "arm", arms))
    table = pa.concat_tables(copies).slice(0, n_points)
    started = time.perf_counter()
    result = replay(table, RuleBased, VariantInfo.of("rule", scenario=scenario))
    seconds = time.perf_counter() - started
    return {"decision_points": len(result.decisions), "seconds": seconds,
            "per_s": len(result.decisions) / seconds}  # fmt: skip


def checkpoint_bytes(n_users: int) -> dict[str, float]:
    """Bytes per user of a pickled experiment core (population arrays, random state,
    guardrails) after five days, per scenario."""
    sizes = {}
    for name in SCENARIOS:
        scenario = load_scenario(name)
        core = ExperimentCore(load_population(scenario), scenario, [CONTROL_ARM, "a", "b"], 0,
                              n_users, GuardrailConfig(**scenario.guardrails))  # fmt: skip
        for _ in range(5):
            core.step_day()
        sizes[name] = len(pickle.dumps(core)) / n_users
    return sizes


def _agents() -> dict[str, dict[str, object]]:
    return settings_from(compose_config([AGENTS, "tournament.n_tournaments=1"])).agents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=28)
    args = parser.parse_args()
    overhead = tournament_overhead(args.repeats)
    print(
        f"default tournament ({AGENTS}): {overhead['off_s']:.3f} s without a log, "
        f"{overhead['on_s']:.3f} s with the default log "
        f"({overhead['users_per_arm']:.0f} users per arm): {overhead['overhead']:+.1%} in the "
        f"worker; the driver then encodes it as Parquet in {overhead['parquet_s']:.3f} s "
        f"({overhead['parquet_s'] / overhead['off_s']:.1%}), while the workers play on"
    )
    rate = write_rate(args.users, args.days, args.repeats)
    print(
        f"user-level events, all {args.users} users for {args.days} days: "
        f"{rate['user_events']:,} events in {rate['seconds']:.3f} s "
        f"= {rate['events_per_s'] / 1e6:.1f} M events/s (recorder, tables and Parquet)"
    )
    speed = replay_speed(10_000)
    print(
        f"replay of {speed['decision_points']:,.0f} decision points (rule agent, own process): "
        f"{speed['seconds']:.2f} s, {speed['per_s']:,.0f} per s"
    )
    checkpoint = checkpoint_bytes(args.users)
    print(
        f"checkpoint at a decision point ({args.users} users): "
        + ", ".join(f"{name} {size:.0f} B per user" for name, size in checkpoint.items())
    )
    print(json.dumps({"tournament": overhead, "write": rate, "replay": speed,
                      "checkpoint_bytes_per_user": checkpoint}))  # fmt: skip


if __name__ == "__main__":
    main()
