"""Policies for the replay tests, importable by the policy's own process."""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.common import BaseAgent
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.eventlog.replay import history


def _days_in(value: Any, depth: int = 0) -> list[int]:
    """Every logged day this object holds: decision rows (dicts with a day), Arrow tables,
    pandas frames, lists of them."""
    if depth > 3:
        return []
    found: list[int] = []
    if isinstance(value, Mapping):
        day = value.get("day")
        if isinstance(day, int) and "reward" in value:
            found.append(day)
        for item in list(value.values())[:50]:
            if isinstance(item, list | tuple | dict):
                found += _days_in(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value[:100_000]:
            if isinstance(item, Mapping | list | tuple):
                found += _days_in(item, depth + 1)
    elif type(value).__name__ in ("Table", "RecordBatch", "DataFrame") and hasattr(value, "column"):
        with contextlib.suppress(Exception):  # a foreign object named like a table
            found += [int(d) for d in value.column("day").to_pylist()]
    return found


class Snoop(BaseAgent):
    """Tries every in-process way it knows to see a decision point later than its own, and
    says what it found in its reasoning (holding otherwise)."""

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        with warnings.catch_warnings():  # probing every module touches deprecated attributes
            warnings.simplefilter("ignore")
            return self._probe(signals)

    def _probe(self, signals: Signals) -> ConfigUpdate | None:
        now = signals.experiment_days
        leaks: list[str] = []

        def later(where: str, days: list[int]) -> None:
            if any(d >= now for d in days):
                leaks.append(f"{where}: day {max(days)} >= {now}")

        later("history()", [r["day"] for r in history()])
        later("own attributes", _days_in(vars(self)))
        later(
            "closure of decide",
            _days_in([c.cell_contents for c in (self.decide.__func__.__closure__ or ())]),
        )  # type: ignore[attr-defined]
        for frame_info in inspect.stack():
            later(f"frame {frame_info.function}", _days_in(dict(frame_info.frame.f_locals)))
            later(f"globals of {frame_info.function}", _days_in(dict(frame_info.frame.f_globals)))
        for obj in gc.get_objects():
            if isinstance(obj, dict) or type(obj).__name__ in ("Table", "RecordBatch"):
                later(f"gc {type(obj).__name__}", _days_in(obj))
        for module in list(sys.modules.values()):
            later(
                f"module {getattr(module, '__name__', '?')}",
                _days_in(dict(vars(module))) if hasattr(module, "__dict__") else [],
            )
        later("argv", [])  # argv is checked for the log's path below
        text = " ".join([*sys.argv, *os.environ.values(), os.getcwd()])
        if "eventlog" in text or "decisions.parquet" in text:
            leaks.append("the log's path is in argv, the environment or the working directory")
        for fd in Path("/proc/self/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.endswith(".parquet"):
                leaks.append(f"open file {target}")
        if any(p.suffix == ".parquet" for p in Path.cwd().rglob("*")):
            leaks.append("a Parquet file under the working directory")
        if leaks:
            return ConfigUpdate({"scanXp": 99.0}, "LEAK: " + " | ".join(sorted(set(leaks))[:5]))
        return None


class Raises(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        raise RuntimeError("policy bug")


class Doubles(BaseAgent):
    """Asks for twice the scan XP every time: outside the delta clamp, a violation."""

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return ConfigUpdate({"scanXp": current_config["scanXp"] * 2.0}, "double")


class Crashes(BaseAgent):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        os._exit(3)


class AlwaysTen:
    """An external-log policy: always the 10 % discount."""

    def choose(self, point: str, features: Mapping[str, Any], allowed: list[str]) -> str:
        return "discount_10"


class ExternalSnoop:
    """An external-log policy that looks for decision points at or after its own time (its
    feature ``t``) in everything it can reach, and answers LEAK (not an allowed action) if any."""

    def choose(self, point: str, features: Mapping[str, Any], allowed: list[str]) -> str:
        now = features["t"]
        seen = [r["time"] for r in history()]
        for obj in gc.get_objects():
            if isinstance(obj, dict) and isinstance(obj.get("time"), float) and "closes" in obj:
                seen.append(obj["time"])
        if any(t >= now for t in seen) or any("external" in a for a in sys.argv):
            return "LEAK"
        return "none"


class Chaotic:
    """Raises on even cases, answers something not allowed on odd ones."""

    def choose(self, point: str, features: Mapping[str, Any], allowed: list[str]) -> str:
        if int(features["t"] // 3600) % 2 == 0:
            raise RuntimeError("chooser bug")
        return "free_money"
