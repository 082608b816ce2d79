"""A persona's twin in the behavioural model, and a population preset made of personas.

Each persona names a segment of a base population preset (``conf/population/default.yaml``:
achiever, socialiser, casual, explorer, farmer) and may override the typical value of any of
its traits. A persona file then becomes a preset like any other, one segment per persona,
built as the preset YAML would be and passed through the gamification scenario's own
validation, so a persona population is checked exactly as a hand-written preset is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from arena_rl.scenarios.gamification.specs import (
    TRAIT_BOUNDS,
    TRAITS,
    PopulationSpec,
    population_from_dict,
)
from arena_rl.scenarios.specs import SpecError, distribution, preset_path, read_yaml

if TYPE_CHECKING:
    from arena_rl.personas.spec import Persona, Twin

Preset = Mapping[str, Any]
"""A population preset as read from YAML (trait values are numbers or distribution maps)."""


def base_preset(base: str | Path | Preset = "default") -> dict[str, Any]:
    """The base population preset as read from YAML (by name, path, or already read)."""
    if isinstance(base, Mapping):
        data = dict(base)
        source = str(data.get("name", "<base>"))
    else:
        path = preset_path(base, "population")
        data, source = read_yaml(path), str(path)
    if "prior" in data:
        raise SpecError(f"{source}: a prior over populations; personas need one preset as base")
    if not isinstance(data.get("segments"), Mapping):
        raise SpecError(f"{source}: no 'segments' mapping to take persona traits from")
    return data


def centred(value: Any, typical: float) -> Any:
    """A trait value (a number or a distribution map) moved to a new typical value, its spread
    kept: the mean of a normal, the median of a lognormal, the mean of a beta (same a + b)."""
    if isinstance(value, Mapping):
        if set(value) == {"mean", "sd"}:
            return {"mean": typical, "sd": value["sd"]}
        if set(value) == {"median", "sd_log"}:
            return {"median": typical, "sd_log": value["sd_log"]}
        if set(value) == {"a", "b"} and 0 < typical < 1:
            total = float(value["a"]) + float(value["b"])
            return {"a": round(typical * total, 9), "b": round((1 - typical) * total, 9)}
    return typical  # a constant, or a share at 0 or 1, which no beta reaches


def twin_traits(persona: Persona, base: str | Path | Preset = "default") -> dict[str, Any]:
    """The full trait block of a persona's twin, in the preset YAML's format: its segment's
    traits in the base preset, with the persona's explicit values as their new centres."""
    segments = base_preset(base)["segments"]
    segment = persona.twin.segment
    if segment not in segments:
        raise SpecError(f"persona {persona.id!r}: unknown twin segment {segment!r}")
    traits = {t: copy.deepcopy(segments[segment][t]) for t in TRAITS}  # no YAML aliases
    for name, value in persona.twin.traits.items():
        if name not in TRAIT_BOUNDS:
            raise SpecError(f"persona {persona.id!r}: unknown twin trait {name!r}")
        traits[name] = centred(traits[name], value)
    return traits


def twin_problems(twin: Twin, segments: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for each thing wrong with a twin against the base preset's segments;
    values are checked by the population's own trait validation."""
    if twin.segment not in segments:
        known = ", ".join(map(str, segments))
        return [("twin.segment", f"unknown segment {twin.segment!r}; the base has: {known}")]
    problems = []
    for name, value in twin.traits.items():
        if name not in TRAIT_BOUNDS:
            problems.append((f"twin.traits.{name}", f"unknown trait; known: {', '.join(TRAITS)}"))
            continue
        try:
            distribution(centred(segments[twin.segment][name], value), name, TRAIT_BOUNDS[name])
        except SpecError as exc:
            message = str(exc).removeprefix(name).lstrip(":. ")
            if message.startswith("median: "):  # the base segment's trait is lognormal
                message = message.removeprefix("median: ") + " (a lognormal trait's median)"
            problems.append((f"twin.traits.{name}", message))
    return problems


def population_preset(
    personas: Sequence[Persona],
    base: str | Path | Preset = "default",
    n_users: int | None = None,
    name: str = "personas",
) -> dict[str, Any]:
    """A population preset in the YAML format, one segment per persona (named by its id,
    its share ``twin.share`` over the file's total); the base's other fields are kept."""
    data = base_preset(base)
    total = sum(p.twin.share for p in personas)
    segments = {p.id: {"share": p.twin.share / total, **twin_traits(p, data)} for p in personas}
    preset = {"name": name, **{k: v for k, v in data.items() if k not in ("name", "segments")}}
    if n_users is not None:
        preset["n_users"] = n_users
    preset["segments"] = segments
    return preset


def population_from_personas(
    personas: Sequence[Persona],
    base: str | Path | Preset = "default",
    n_users: int | None = None,
    name: str = "personas",
) -> PopulationSpec:
    """A validated population preset whose segments are these personas' twins."""
    if not personas:
        raise SpecError("a population needs at least one persona")
    ids = [p.id for p in personas]
    if len(set(ids)) != len(ids):
        raise SpecError(f"persona ids must be distinct (they name the segments): {ids}")
    preset = population_preset(personas, base, n_users, name)
    return cast(PopulationSpec, population_from_dict(preset, name))  # base_preset: no prior


def preset_name(path: str | Path) -> str:
    """The population name of a persona file: ``personas_<stem>``, so that saving it next to
    the presets never overwrites one (``default.json`` would otherwise be ``default``)."""
    return f"personas_{Path(path).stem}"


def load_persona_population(path: str | Path, base: str | Path = "default") -> PopulationSpec:
    """The population of a persona file (one segment per persona), named ``personas_<file>``
    (never a preset's own name); a bad file is a SpecError like a bad preset's, its message
    listing every problem."""
    from arena_rl.personas.spec import PersonaFileError, load_personas  # spec imports this

    try:
        personas = load_personas(path, base)
    except PersonaFileError as exc:
        raise SpecError(str(exc)) from exc
    return population_from_personas(personas, base, name=preset_name(path))
