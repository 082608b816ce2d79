"""Check off-policy estimators against the simulator's exact counterfactual truth.

Usage: ``python scripts/ope_check.py [--tournaments 200] [--workers 2] [--users-per-arm 500]``

Each tournament is logged under a stochastic policy in every treatment arm (``uniform``: one of
three economies drawn uniformly each decision; ``thompson``: Thompson sampling over the same
three; ``hedge``: Exp3, exponential weights mixed with a uniform share), with the event log's
decision points. The carry-over test (:func:`arena_rl.eventlog.evaluation.carry_over`) runs on
each logger's pooled log and on each tournament's alone. Three deterministic targets each
always ask for one of the three economies. For every tournament and target:

* **Replay**: the target is replayed over the logged decision points (its own process; the
  production path of ``scripts/replay.py``), and the estimators of ``arena_rl.eventlog.ope``
  give its mean reward per decision with 95 % bootstrap CIs.
* **Per-decision truth** (what per-decision estimators estimate): the simulator is
  checkpointed at every decision day (population arrays and random state, by copy), the
  target's action replaces the logged one, and the days to the next decision are simulated on
  the same users with the same random draws. Where the target asks what was logged, this
  reproduces the logged reward exactly (checked).
* **Whole-policy truth** (the carry-over case): the target plays the whole tournament itself,
  same seed. A change of economy keeps acting for weeks (novelty, habits, reference points),
  so the value of a policy followed throughout differs from the mean of one-step deviations:
  per-decision estimators are biased for it, by design. ``trajectory_ips`` (an arm's whole
  schedule weighed at once) is unbiased for it but degenerates: its ESS shows how far.

Prints, per logging policy and estimator, the bias, RMSE and CI coverage against each truth
over the tournaments, then one JSON line. ``docs/replay.md`` discusses the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from agents.common import BaseAgent, reward, scaled
from agents.thompson import ThompsonSampling
from arena_rl.agent import VariantInfo
from arena_rl.core.events import EventStream
from arena_rl.core.experiment import CONTROL_ARM, ExperimentCore
from arena_rl.core.guardrails import ConfigUpdate, GuardrailConfig
from arena_rl.core.signals import Signals
from arena_rl.eventlog.evaluation import carry_over, off_policy
from arena_rl.eventlog.ope import trajectory_ips
from arena_rl.eventlog.recorder import EventLogRecorder
from arena_rl.eventlog.replay import ReplayResult, replay
from arena_rl.sandbox import AgentSandbox
from arena_rl.scenarios import load_population, load_scenario

ECONOMIES = {
    "base": {},
    "frugal": {"scanXp": 0.7, "feedbackXp": 0.7, "photoXp": 0.7, "firstScanOfDayXp": 0.7},
    "generous": {"streakBonusPerDay": 1.4, "streakBonusCap": 1.3, "firstScanOfDayXp": 1.4},
}
"""The three economies every policy here chooses among (multipliers of the base; each is
reachable in one update under the delta clamp)."""
ARMS = 6
DAYS = 28
INTERVAL = 2
"""Days between decisions: each decision's reward is its arm's value over the next two days."""
DECISIONS = DAYS // INTERVAL
"""Decisions per arm (no value after the horizon is counted here: the core never reaches it)."""


def target_economy(name: str) -> dict[str, float]:
    scenario = load_scenario()
    return scaled(scenario.base_economy(), ECONOMIES[name], scenario.knobs)


class Hedge(BaseAgent):
    """Exp3: exponential weights over the economies, mixed with a uniform share so that every
    economy keeps probability >= GAMMA/3 (positivity). Each reward estimate seen at a decision
    is credited to the economy drawn at the one before, weighed by 1/its probability."""

    GAMMA = 0.3
    ETA = 0.3

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        self.log_weights_ = np.zeros(len(ECONOMIES))
        self.first_: float | None = None
        self.last_: tuple[int, float] | None = None
        self.probability_ = 1.0

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        seen = reward(signals, self.info_)
        if seen is not None and self.last_ is not None:
            self.first_ = self.first_ or seen
            gain = float(np.clip(10.0 * (seen / self.first_ - 1.0), -1.0, 1.0))
            drawn, probability = self.last_
            self.log_weights_[drawn] += self.ETA * gain / probability
        weights = np.exp(self.log_weights_ - self.log_weights_.max())
        chances = (1 - self.GAMMA) * weights / weights.sum() + self.GAMMA / len(ECONOMIES)
        drawn = int(self.rng_.choice(len(ECONOMIES), p=chances))
        self.probability_ = float(chances[drawn])
        self.last_ = (drawn, self.probability_)
        name = list(ECONOMIES)[drawn]
        return ConfigUpdate(target_economy(name), f"hedge: {name}")

    def action_probability(self) -> float:
        return self.probability_


class Uniform(BaseAgent):
    """Each decision, one of the economies at random: probability 1/3 each."""

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        name = list(ECONOMIES)[int(self.rng_.integers(len(ECONOMIES)))]
        return ConfigUpdate(target_economy(name), f"uniform: {name}")

    def action_probability(self) -> float:
        return 1.0 / len(ECONOMIES)


@dataclass(frozen=True)
class Always:
    """A deterministic target: always asks for one economy (picklable factory)."""

    economy: str

    def __call__(self) -> BaseAgent:
        return _Always(self.economy)


class _Always(BaseAgent):
    def __init__(self, economy: str) -> None:
        self.economy = economy

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return ConfigUpdate(target_economy(self.economy), f"always {self.economy}")


LOGGERS = {
    "uniform": Uniform,
    "thompson": lambda: ThompsonSampling(arms=ECONOMIES, hold_days=1, transition_days=0),
    "hedge": Hedge,
}
TARGETS = tuple(ECONOMIES)


def new_core(seed: int, users_per_arm: int, recorder: EventLogRecorder | None) -> ExperimentCore:
    scenario = load_scenario()
    arms = [CONTROL_ARM, *(f"variant_{i}" for i in range(1, ARMS + 1))]
    return ExperimentCore(
        load_population(scenario), scenario, arms, seed, users_per_arm * (ARMS + 1),
        GuardrailConfig(**scenario.guardrails), [recorder] if recorder else [],
    )  # fmt: skip


def snapshot(core: ExperimentCore) -> ExperimentCore:
    """The core as it is (population arrays, random state, guardrails), without its listeners."""
    return copy.deepcopy(core, {id(core.events): EventStream()})


def play(
    core: ExperimentCore, boxes: Mapping[str, AgentSandbox], names: Mapping[str, str]
) -> dict[int, ExperimentCore]:
    """Drive the core to the horizon as the environment does; a checkpoint at every decision
    day, taken before anyone acts."""
    checkpoints = {}
    for day in range(DAYS):
        if day % INTERVAL == 0:
            checkpoints[day] = snapshot(core)
            asked = {}
            for arm, box in boxes.items():
                seen = core.signals_of(arm)
                asked[arm], p = box.decide(seen, core.config(arm), day)
                core.decided(arm, names[arm], seen, asked[arm], p, 0.0)
            core.tick(float(day))
            for arm, update in asked.items():
                if update is not None:
                    boxes[arm].on_result(core.submit(arm, update, float(day)), day)
        core.step_day()
    return checkpoints


def window_rewards(
    start: ExperimentCore, actions: Mapping[str, ConfigUpdate | None], day: int
) -> dict[str, float]:
    """From a checkpoint: these actions, then the days to the next decision; each arm's value."""
    core = snapshot(start)
    core.tick(float(day))
    for arm, update in actions.items():
        if update is not None:
            core.submit(arm, update, float(day))
    earned = dict.fromkeys(actions, 0.0)
    for _ in range(min(INTERVAL, DAYS - day)):
        report = core.step_day()
        for i, arm in enumerate(core.arms):
            if arm in earned:
                earned[arm] += float(report.outcome.value[i])
    return earned


def tournament(args: tuple[str, int, int]) -> dict[str, Any]:
    """One logged tournament: its decision points, and each target's two truths."""
    logger, seed, users_per_arm = args
    scenario = load_scenario()
    info = VariantInfo.of("logger", scenario=scenario, days=DAYS)
    recorder = EventLogRecorder(scenario.user_events, users="none", seed=seed, tournament=seed)
    core = new_core(seed, users_per_arm, recorder)
    arms = core.arms[1:]
    names = {arm: f"{logger}_{i}" for i, arm in enumerate(arms, start=1)}
    boxes = {}
    for i, arm in enumerate(arms):
        boxes[arm] = AgentSandbox(arm, LOGGERS[logger](), scenario.knobs, None)
        boxes[arm].reset(info, np.random.default_rng([seed, i]))
    checkpoints = play(core, boxes, names)
    decisions = recorder.tables()["decisions"]
    truth: dict[str, dict[str, Any]] = {}
    for target in TARGETS:
        action = ConfigUpdate(target_economy(target), "target")
        per_decision = {}
        for day, checkpoint in checkpoints.items():
            for arm, value in window_rewards(checkpoint, dict.fromkeys(arms, action), day).items():
                per_decision[(names[arm], day)] = value
        whole = new_core(seed, users_per_arm, None)
        always = {arm: AgentSandbox(arm, Always(target)(), scenario.knobs, None) for arm in arms}
        for box in always.values():
            box.reset(info, np.random.default_rng(0))
        play(whole, always, names)
        rewards = [per_decision[(r["arm"], r["day"])] for r in decisions.to_pylist()]
        truth[target] = {
            "per_decision": rewards,
            "per_decision_value": float(np.mean(rewards)),
            "whole_value": float(np.mean([whole.objective[a] for a in arms])) / DECISIONS,
        }
    return {"logger": logger, "seed": seed, "decisions": decisions, "truth": truth}


def estimates(args: tuple[pa.Table, ReplayResult, dict[str, Any]]) -> dict[str, Any]:
    """Every estimator for one tournament and target, and the per-decision consistency check."""
    decisions, replayed, truth = args
    with threadpool_limits(1):  # one thread per worker: the reward model's OpenMP threads
        found = off_policy(decisions, replayed, n_boot=400, seed=0)  # oversubscribe the cores
    out = {name: (e.value, e.ci_low, e.ci_high, e.ess) for name, e in found.items()}
    out |= _trajectory(decisions, replayed)
    agreed = [d.agrees for d in replayed.decisions]
    logged = decisions["reward"].to_numpy(zero_copy_only=False)
    cf = np.asarray(truth["per_decision"])
    out["consistency"] = float(np.max(np.abs(cf[agreed] - logged[agreed]), initial=0.0))
    return out


def _trajectory(decisions: pa.Table, replayed: ReplayResult) -> dict[str, Any]:
    """Trajectory IPS over the arms: each arm's whole schedule weighed at once."""
    rows = decisions.to_pylist()
    by_arm: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_arm.setdefault(row["arm"], []).append(i)
    rewards = [float(np.mean([rows[i]["reward"] for i in idx])) for idx in by_arm.values()]
    logging = [[rows[i]["probability"] for i in idx] for idx in by_arm.values()]
    target = [[float(replayed.decisions[i].agrees) for i in idx] for idx in by_arm.values()]
    found = trajectory_ips(rewards, logging, target, n_boot=400)
    return {name: (e.value, e.ci_low, e.ci_high, e.ess) for name, e in found.items()}


def summarise(rows: list[dict[str, Any]], truth_key: str) -> dict[str, dict[str, float]]:
    """Bias, RMSE and 95 % CI coverage of each estimator against one truth."""
    table: dict[str, dict[str, float]] = {}
    for name in rows[0]["estimates"]:
        if name == "consistency":
            continue
        errors, covered, ess = [], [], []
        for row in rows:
            value, low, high, e = row["estimates"][name]
            truth = row[truth_key]
            if not np.isfinite(value):
                continue
            errors.append(value - truth)
            covered.append(low <= truth <= high)
            ess.append(e)
        if errors:
            table[name] = {
                "bias": float(np.mean(errors)),
                "rmse": float(np.sqrt(np.mean(np.square(errors)))),
                "coverage": float(np.mean(covered)),
                "median_ess": float(statistics.median(ess)),
                "n": len(errors),
            }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tournaments", type=int, default=200, help="per logging policy")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--users-per-arm", type=int, default=500)
    parser.add_argument("--loggers", nargs="+", default=list(LOGGERS), choices=list(LOGGERS))
    args = parser.parse_args()
    started = time.perf_counter()
    report: dict[str, Any] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for logger in args.loggers:
            jobs = [(logger, seed, args.users_per_arm) for seed in range(args.tournaments)]
            played = list(pool.map(tournament, jobs))
            print(f"{logger}: {len(played)} tournaments logged and their truths simulated "
                  f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
            pooled = carry_over(pa.concat_tables([p["decisions"] for p in played]))
            alone = [carry_over(p["decisions"]).warning is not None for p in played]
            print(f"  carry-over test on the pooled log: F = {pooled.f_statistic:.1f}, "
                  f"p = {pooled.p_value:.1e} ({'warns' if pooled.warning else 'silent'}); "
                  f"warns on {np.mean(alone):.0%} of single tournaments")  # fmt: skip
            report[logger] = {"carry_over": {"f": pooled.f_statistic, "p": pooled.p_value,
                                             "single_warns": float(np.mean(alone))}}  # fmt: skip
            for target in TARGETS:
                logs = pa.concat_tables([p["decisions"] for p in played])
                replayed = replay(logs, Always(target), VariantInfo.of("target", days=DAYS))
                pieces, start = [], 0
                for p in played:
                    n = p["decisions"].num_rows
                    pieces.append((p["decisions"], _slice(replayed, start, n), p["truth"][target]))
                    start += n
                found = list(pool.map(estimates, pieces))
                rows = [
                    {"estimates": f, "per_decision": p["truth"][target]["per_decision_value"],
                     "whole": p["truth"][target]["whole_value"]}
                    for f, p in zip(found, played, strict=True)
                ]  # fmt: skip
                consistency = max(f["consistency"] for f in found)
                report[logger][target] = {
                    "agreement": replayed.agreement,
                    "consistency": consistency,
                    "per_decision": summarise(rows, "per_decision"),
                    "whole": summarise(rows, "whole"),
                    "truth_per_decision": float(np.mean([r["per_decision"] for r in rows])),
                    "truth_whole": float(np.mean([r["whole"] for r in rows])),
                }
                _print(logger, target, report[logger][target])
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    print(json.dumps(report))


def _slice(result: ReplayResult, start: int, n: int) -> ReplayResult:
    return ReplayResult(result.decisions[start : start + n], [], 0.0)


def _print(logger: str, target: str, found: Mapping[str, Any]) -> None:
    print(
        f"\nlogged under {logger}, target always {target}: agreement {found['agreement']:.1%}; "
        f"truth per decision {found['truth_per_decision']:.4f}, whole policy "
        f"{found['truth_whole']:.4f}; counterfactual = logged where they agree to "
        f"{found['consistency']:.1e}"
    )
    print(
        f"  {'estimator':<15} {'per-decision truth':>32}   {'whole-policy truth':>32}   median ESS"
    )
    columns = f"{'bias':>10} {'RMSE':>10} {'cover':>10}"
    print(f"  {'':<15} {columns}   {columns}")
    for name, one in found["per_decision"].items():
        two = found["whole"][name]
        print(
            f"  {name:<15} {one['bias']:>10.4f} {one['rmse']:>10.4f} {one['coverage']:>10.1%}   "
            f"{two['bias']:>10.4f} {two['rmse']:>10.4f} {two['coverage']:>10.1%}   "
            f"{one['median_ess']:>8.1f}"
        )


if __name__ == "__main__":
    main()
