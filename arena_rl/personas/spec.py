"""Persona files: TinyTroupe-style specs of believable app users, validated with pydantic.

A persona file is JSON, ``{"version": 1, "personas": [...]}``. Everything a user can get wrong
is found in one pass and reported together, each problem on its own line naming the file, the
persona and the field, so a hand-edited file is fixed in one go rather than one error per run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from arena_rl.personas.twin import base_preset, twin_problems

VERSION = 1
"""The persona file format this module reads and writes."""

PERSONAS_DIR = Path(__file__).resolve().parents[1] / "conf" / "personas"
"""Named persona files (``conf/personas/<name>.json``), shipped inside the package."""

DEFAULT_PERSONAS = PERSONAS_DIR / "default.json"
"""The shipped persona file: a dozen and more users of a facility-feedback app."""

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class PersonaFileError(ValueError):
    """A persona file (or list of personas) that cannot be used; one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _valid_id(value: str) -> str:
    if not re.fullmatch(ID_PATTERN, value):
        raise ValueError(f"must be 1-64 letters, digits, '_' or '-', got {value!r}")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]
PersonaId = Annotated[str, AfterValidator(_valid_id)]


class _Strict(BaseModel):
    # strict: a JSON string is not a number, nor a number a string; unknown keys are typos
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Personality(_Strict):
    """Who the persona is, in the words a language model is prompted with."""

    traits: list[Text] = Field(min_length=1)
    goals: list[Text] = Field(min_length=1)
    style: Text
    """How they speak or write."""
    decision_making: Text
    """How they make up their mind."""


class Rules(_Strict):
    """Checks on this persona's own text, so a curated persona stays as its author meant."""

    required_traits: list[Text] = []
    max_goals: int | None = Field(default=None, ge=1)
    style_max_words: int | None = Field(default=None, ge=1)
    style_forbidden: list[Text] = []
    """Words or phrases the style must not contain (case-insensitive)."""


class Twin(_Strict):
    """The persona's counterpart in the behavioural model: a segment of the base population
    whose traits it starts from, overridden by explicit typical values."""

    segment: Text
    share: float = Field(default=1.0, gt=0)
    """Relative weight of this persona's segment when the file becomes a population."""
    traits: dict[str, float] = {}
    """Trait name -> typical value (the centre of the segment's distribution)."""


class Persona(_Strict):
    """One persona: identity, personality, model settings, its own rules and its twin."""

    id: PersonaId
    name: Text
    occupation: Text
    description: Text
    personality: Personality
    model: str | None = None
    """A model of the price table to run this persona with, instead of the study's."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    prompt_format: Literal["narrative", "json"] = "narrative"
    rules: Rules = Rules()
    twin: Twin

    def system_prompt(self) -> str:
        """The text that puts a model into this persona; short, for small local contexts."""
        p = self.personality
        if self.prompt_format == "json":
            spec = self.model_dump(include={"name", "occupation", "description", "personality"})
            return (
                "Act as the person this JSON describes. Answer in the first person, in their "
                "voice, and never say you are an AI.\n" + json.dumps(spec, ensure_ascii=False)
            )
        return (
            f"You are {self.name}, {_sentence(self.occupation)} {_sentence(self.description)}\n"
            f"Your traits: {', '.join(p.traits)}. Your goals: {'; '.join(p.goals)}.\n"
            f"How you speak: {_sentence(p.style)} How you decide: {_sentence(p.decision_making)}\n"
            "Answer in the first person, in your own voice, and never say you are an AI."
        )


_Part = TypeVar("_Part", Personality, Rules, Twin)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1] in ".!?" else text + "."


# ---- validation ---------------------------------------------------------------------------------


def resolve_persona_file(name_or_path: str | Path) -> Path:
    """A persona file: a path as given (``.json`` or with a folder), or
    ``conf/personas/<name>.json``."""
    path = Path(name_or_path)
    if path.suffix == ".json" or len(path.parts) > 1:
        return path
    candidate = PERSONAS_DIR / f"{name_or_path}.json"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in PERSONAS_DIR.glob("*.json")))
        raise PersonaFileError([f"unknown persona file {str(name_or_path)!r}; available: {known}"])
    return candidate


def load_personas(name_or_path: str | Path, base: str | Path = "default") -> list[Persona]:
    """Read and validate a persona file (a name or a path); every problem is reported at once.

    Args:
        name_or_path: ``conf/personas/<name>.json`` by name, or a JSON file's path.
        base: the population preset the personas' twins refer to.

    Raises:
        PersonaFileError: one line per problem, naming file, persona and field.
    """
    path = resolve_persona_file(name_or_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PersonaFileError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise PersonaFileError([f"{path}: not UTF-8 text: {exc}"]) from exc
    except json.JSONDecodeError as exc:
        raise PersonaFileError(
            [f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from exc
    personas, problems = _parse(data, str(path), base)
    if problems:
        raise PersonaFileError(problems)
    return personas


def check_personas(
    personas: Sequence[Persona], source: str = "<personas>", base: str | Path = "default"
) -> None:
    """Validate personas built in code as a file would be; PersonaFileError otherwise."""
    raw = [p.model_dump() for p in personas]
    _, problems = _parse({"version": VERSION, "personas": raw}, source, base)
    if problems:
        raise PersonaFileError(problems)


def save_personas(
    path: str | Path, personas: Sequence[Persona], base: str | Path = "default"
) -> None:
    """Validate, then write atomically (a temporary file in the same folder, renamed over the
    old one), keeping the previous file as ``<name>.bak``; an invalid list leaves it alone."""
    path = Path(path)
    check_personas(personas, str(path), base)
    document = {
        "version": VERSION,
        "personas": [p.model_dump(mode="json", exclude_defaults=True) for p in personas],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".bak"))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _parse(data: object, source: str, base: str | Path) -> tuple[list[Persona], list[str]]:
    """The valid personas of a file's parsed JSON, and one line per problem found (file-level
    problems first, then each persona's in file order)."""
    if not isinstance(data, Mapping):
        return [], [f"{source}: expected a JSON object at top level, got {type(data).__name__}"]
    problems = [f"{source}: field {key}: unknown field" for key in data if key not in _TOP]
    if data.get("version") != VERSION:
        got = "required" if "version" not in data else f"got {data['version']!r}"
        problems.append(f"{source}: field version: must be {VERSION}, {got}")
    items = data.get("personas")
    if not isinstance(items, list) or not items:
        problems.append(f"{source}: field personas: must be a non-empty list of personas")
        return [], problems
    segments = base_preset(base)["segments"]
    personas: list[Persona] = []
    found: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        where = _where(source, item, index)
        try:
            personas.append(Persona.model_validate(item))
        except ValidationError as exc:
            found += [(index, f"{where} {_field(e['loc'])}: {_message(e)}") for e in exc.errors()]
        if isinstance(item, Mapping):
            checks = _content_problems(item, segments)
            found += [(index, f"{where} field {field}: {message}") for field, message in checks]
    found += _duplicates(items, source)
    return personas, problems + [line for _, line in sorted(found, key=lambda f: f[0])]


_TOP = frozenset({"version", "personas"})


def _where(source: str, item: object, index: int) -> str:
    """``file: persona 'id' (#n)``, or ``file: persona #n`` when the id is missing or bad."""
    pid = item.get("id") if isinstance(item, Mapping) else None
    if isinstance(pid, str) and re.fullmatch(ID_PATTERN, pid):
        return f"{source}: persona {pid!r} (#{index + 1})"
    return f"{source}: persona #{index + 1}"


def _field(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "(the persona itself)"
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return f"field {path}"


def _message(error: Any) -> str:
    """pydantic's message, in this file's words, with the offending value where it helps."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "value_error":
        return str(ctx["error"])
    got = repr(error.get("input"))
    return f"{error['msg']}, got {got if len(got) <= 60 else got[:57] + '...'}"


def _content_problems(
    item: Mapping[str, Any], segments: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(field, message) for what the schema cannot see: the rules, the model and the twin,
    each checked when its own parts are valid, so a schema error hides nothing else."""
    personality, rules = (
        _part(Personality, item.get("personality")),
        _part(Rules, item.get("rules", {})),
    )
    twin, model = _part(Twin, item.get("twin")), item.get("model")
    problems = _rule_problems(personality, rules) if personality and rules else []
    if isinstance(model, str):
        problems += _model_problems(model)
    return problems + (twin_problems(twin, segments) if twin else [])


def _part(cls: type[_Part], data: object) -> _Part | None:
    """A part of a persona validated on its own; None when it has schema errors."""
    try:
        return cls.model_validate(data)
    except ValidationError:
        return None


def _rule_problems(p: Personality, rules: Rules) -> list[tuple[str, str]]:
    problems = []
    have = {t.casefold() for t in p.traits}
    for trait in rules.required_traits:
        if trait.casefold() not in have:
            problems.append(("personality.traits", f"lacks {trait!r} (rules.required_traits)"))
    if rules.max_goals is not None and len(p.goals) > rules.max_goals:
        too_many = f"{len(p.goals)} goals, over rules.max_goals={rules.max_goals}"
        problems.append(("personality.goals", too_many))
    words = len(p.style.split())
    if rules.style_max_words is not None and words > rules.style_max_words:
        too_long = f"{words} words, over rules.style_max_words={rules.style_max_words}"
        problems.append(("personality.style", too_long))
    for banned in rules.style_forbidden:
        if banned.casefold() in p.style.casefold():
            problems.append(("personality.style", f"contains {banned!r} (rules.style_forbidden)"))
    return problems


def _model_problems(model: str) -> list[tuple[str, str]]:
    from arena_rl.llm.prices import known_model  # the price table is read only when needed

    if known_model(model):
        return []
    return [("model", f"unknown model {model!r}: not in the price table")]


def _duplicates(items: Iterable[object], source: str) -> list[tuple[int, str]]:
    """Ids and names used twice (names compared case-insensitively), at the later persona."""
    problems = []
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        for key in ("id", "name"):
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                continue
            norm = (key, value if key == "id" else value.strip().casefold())
            if norm in seen:
                where = _where(source, item, index)
                also = f"(also persona #{seen[norm] + 1})"
                problems.append((index, f"{where} field {key}: duplicate {key} {value!r} {also}"))
            else:
                seen[norm] = index
    return problems
