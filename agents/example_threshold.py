"""A complete strategy in twenty lines: the example docs/agents.md walks through.

Register it with ``conf/agents/<name>.yaml`` (``_target_: agents.example_threshold.ScanThreshold``)
and select it like any other: ``'+agents=[mine]'``. It reads a gamification metric and moves a
gamification knob, so it says so (``scenarios``) and is refused on any other scenario.
"""

from collections.abc import Mapping

from agents.common import BaseAgent, Fraction, NonNegative, confident, hyperparameters, toward
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals


class ScanThreshold(BaseAgent):
    """Nudges scanXp up while users scan less than ``target_scans`` a day, down above it."""

    scenarios = ("gamification",)

    @hyperparameters  # a bad value is refused here, naming it, not mid-experiment
    def __init__(self, target_scans: NonNegative = 4.0, step: Fraction = 0.1) -> None:
        self.target_scans, self.step = target_scans, step

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        if not self.may_update(signals) or not confident(signals, ["SCAN_FREQUENCY"]):
            return None  # respect the rate limit; never act on low-confidence data
        scans = signals.metrics["SCAN_FREQUENCY"].value
        factor = 1 + self.step if scans < self.target_scans else 1 - self.step
        target = {"scanXp": current_config["scanXp"] * factor}
        why = f"{scans:.2f} scans/day vs target {self.target_scans}"
        return toward(target, current_config, why, self.info_.knobs)
