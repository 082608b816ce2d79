"""Scenario plugins: one package per economy, found by discovery, chosen by ``_target_``.

Each package under ``arena_rl/scenarios/`` that exports ``SCENARIO`` (its scenario class, which
implements :class:`arena_rl.core.scenario.Scenario`) is a plugin; a scenario file in
``conf/scenario/`` names its class with ``_target_`` (a file without one is gamification's,
as before plugins existed).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from arena_rl.core.scenario import Scenario
from arena_rl.scenarios.specs import SpecError, preset_path, read_yaml

DEFAULT_TARGET = "arena_rl.scenarios.gamification.GamificationScenario"
"""The class of a scenario file that names none."""


@cache
def plugins() -> dict[str, type]:
    """Plugin name (its folder) -> scenario class, for every plugin package installed."""
    found = {}
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            package = importlib.import_module(f"{__name__}.{module.name}")
            scenario_class = getattr(package, "SCENARIO", None)
            if scenario_class is not None:
                found[module.name] = scenario_class
    return found


def target_of(cls: type) -> str:
    """The ``_target_`` that names a scenario class in config."""
    return f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__qualname__}"


def scenario_class(target: str, source: str = "scenario") -> type:
    """The plugin class a ``_target_`` names; SpecError listing the plugins otherwise."""
    for cls in plugins().values():
        if target in (target_of(cls), f"{cls.__module__}.{cls.__qualname__}"):
            return cls
    known = ", ".join(f"{name} ({target_of(cls)})" for name, cls in plugins().items())
    raise SpecError(f"{source}, field '_target_': unknown scenario {target!r}; plugins: {known}")


def scenario_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Scenario:
    """Validate a scenario given as a mapping (as read from YAML or composed by Hydra)."""
    fields = dict(data)
    fields.pop("defaults", None)  # Hydra's composition list: the schema is the plugin's defaults
    cls = scenario_class(str(fields.pop("_target_", DEFAULT_TARGET)), source)
    scenario: Scenario = cls.from_dict(fields, source)  # type: ignore[attr-defined]
    return scenario


def load_scenario(name_or_path: str | Path = "default") -> Scenario:
    """Load a scenario by name (``conf/scenario/<name>.yaml``) or from a YAML path."""
    path = preset_path(name_or_path, "scenario")
    return scenario_from_dict(read_yaml(path), source=str(path))


def load_population(scenario: Scenario, name_or_path: str | Path | None = None) -> Any:
    """A population preset of the scenario's plugin (by default the plugin's own default)."""
    return scenario.load_population(str(name_or_path or scenario.default_population))


__all__ = [
    "SpecError",
    "load_population",
    "load_scenario",
    "plugins",
    "scenario_class",
    "scenario_from_dict",
    "target_of",
]
