"""Personas: TinyTroupe-style specs of believable app users, validated together, and their
twins in the behavioural model (a persona file becomes a population preset)."""

from arena_rl.personas.spec import (
    DEFAULT_PERSONAS,
    Persona,
    PersonaFileError,
    Personality,
    Rules,
    Twin,
    check_personas,
    load_personas,
    resolve_persona_file,
    save_personas,
)
from arena_rl.personas.twin import (
    load_persona_population,
    population_from_personas,
    population_preset,
    twin_traits,
)

__all__ = [
    "DEFAULT_PERSONAS",
    "Persona",
    "PersonaFileError",
    "Personality",
    "Rules",
    "Twin",
    "check_personas",
    "load_persona_population",
    "load_personas",
    "population_from_personas",
    "population_preset",
    "resolve_persona_file",
    "save_personas",
    "twin_traits",
]
