"""Persona files: the shipped one, every kind of problem reported at once, atomic saves, the
command line, and a persona file as a population the simulator runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arena_rl.personas import (
    DEFAULT_PERSONAS,
    Persona,
    PersonaFileError,
    load_personas,
    population_from_personas,
    resolve_persona_file,
    save_personas,
    twin_traits,
)
from arena_rl.personas.cli import main
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.specs import load_population
from arena_rl.scenarios.specs import SpecError

KNOWN_MODEL = "gpt-4o-mini"
UNKNOWN_MODEL = "no-such-model-9000"


def persona(pid: str = "maya", **changes: Any) -> dict[str, Any]:
    """A valid persona as JSON data, with top-level fields replaced."""
    data: dict[str, Any] = {
        "id": pid,
        "name": f"Person {pid}",
        "occupation": "night-shift nurse",
        "description": "Scans codes on her rounds.",
        "personality": {
            "traits": ["conscientious", "dry"],
            "goals": ["keep her streak", "get things fixed"],
            "style": "short and practical",
            "decision_making": "by habit",
        },
        "twin": {"segment": "achiever", "traits": {"habit": 1.4}},
    }
    data.update(changes)
    return data


def write(tmp_path: Path, personas: list[Any], name: str = "p.json", **top: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "personas": personas, **top}))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PersonaFileError) as info:
        load_personas(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# ---- the shipped file ---------------------------------------------------------------------------


def test_shipped_file_is_valid_and_covers_every_segment() -> None:
    personas = load_personas("default")
    assert DEFAULT_PERSONAS.name == "default.json"
    assert resolve_persona_file("default") == DEFAULT_PERSONAS
    assert DEFAULT_PERSONAS.is_file()
    assert len(personas) >= 12
    segments = {s.name for s in load_population("default").segments}
    assert {p.twin.segment for p in personas} == segments
    assert len({p.name for p in personas}) == len(personas)
    assert any(p.rules.required_traits or p.rules.max_goals for p in personas)


def test_unknown_persona_file_name_lists_the_available_ones() -> None:
    with pytest.raises(PersonaFileError, match=r"available: .*default"):
        resolve_persona_file("no_such_file")


# ---- every problem at once ----------------------------------------------------------------------


def test_a_broken_file_reports_every_problem_in_one_error(tmp_path: Path) -> None:
    bad_traits = persona("maya")
    bad_traits["personality"]["traits"] = []
    missing_name = persona("ned")
    del missing_name["name"]
    wrong_type = persona("olga", temperature="hot")
    rules = persona("rules", rules={"max_goals": 1, "style_max_words": 2})
    twin = persona("twin", twin={"segment": "achiever", "traits": {"charisma": 3.0}})
    path = write(
        tmp_path,
        [
            persona("ok"),
            bad_traits,
            missing_name,
            persona("bad id!"),
            wrong_type,
            persona("hot", temperature=2.5),
            rules,
            twin,
            persona("ok", name="Someone else"),
            "not a persona",
        ],
        extra_key=True,
    )
    message = "\n".join(problems_of(path))
    expected = [
        f"{path}: field extra_key: unknown field",
        f"{path}: persona 'maya' (#2) field personality.traits: must not be empty",
        f"{path}: persona 'ned' (#3) field name: required",
        f"{path}: persona #4 field id: must be 1-64 letters, digits, '_' or '-'",
        f"{path}: persona 'olga' (#5) field temperature:",
        f"{path}: persona 'hot' (#6) field temperature: Input should be less than or equal to 2",
        f"{path}: persona 'rules' (#7) field personality.goals: 2 goals, over rules.max_goals=1",
        f"{path}: persona 'rules' (#7) field personality.style: 3 words",
        f"{path}: persona 'twin' (#8) field twin.traits.charisma: unknown trait",
        f"{path}: persona 'ok' (#9) field id: duplicate id 'ok' (also persona #1)",
        f"{path}: persona #10 (the persona itself):",
    ]
    for fragment in expected:
        assert fragment in message, fragment
    assert message.count("\n") + 1 == len(expected)


@pytest.mark.parametrize(
    ("personas", "fragment"),
    [
        ([persona("a"), persona("a", name="Other")], "persona 'a' (#2) field id: duplicate id"),
        ([persona("a"), persona("b", name="person A")], "(#2) field name: duplicate name"),
        ([persona("x y")], "persona #1 field id: must be 1-64"),
        ([persona("x" * 65)], "persona #1 field id: must be 1-64"),
        ([persona("a", temperature=2.5)], "field temperature: Input should be less than"),
        ([persona("a", temperature=-0.1)], "field temperature: Input should be greater than"),
        ([persona("a", prompt_format="yaml")], "field prompt_format:"),
        ([persona("a", model=UNKNOWN_MODEL)], "field model: unknown model 'no-such-model-9000'"),
        ([persona("a", twin={"segment": "wizard"})], "field twin.segment: unknown segment"),
        ([persona("a", twin={"segment": "casual", "share": 0})], "field twin.share:"),
        (
            [persona("a", twin={"segment": "casual", "traits": {"feedback_rate": 1.5}})],
            "field twin.traits.feedback_rate: value 1.5 outside the allowed range [0.0, 1.0]",
        ),
        (
            [persona("a", twin={"segment": "casual", "traits": {"loss_aversion": 0.5}})],
            "field twin.traits.loss_aversion: value 0.5 outside the allowed range [1.0, inf]",
        ),
        ([persona("a", twin={"segment": "casual", "traits": {"habit": "1"}})], "twin.traits.habit"),
        ([persona("a", hobby="chess")], "field hobby: unknown field"),
        ([persona("a", description="   ")], "field description: must not be empty"),
    ],
)
def test_each_problem_is_caught(tmp_path: Path, personas: list[Any], fragment: str) -> None:
    message = "\n".join(problems_of(write(tmp_path, personas)))
    assert fragment in message


def test_empty_lists_and_strings_inside_the_personality(tmp_path: Path) -> None:
    data = persona("a")
    data["personality"].update(goals=[], style="", traits=["ok", ""])
    problems = problems_of(write(tmp_path, [data]))
    assert {p.split(" field ")[1] for p in problems} == {
        "personality.goals: must not be empty",
        "personality.style: must not be empty",
        "personality.traits[1]: must not be empty",
    }


def test_rules_each_checked(tmp_path: Path) -> None:
    ok = persona("a", rules={"required_traits": ["Conscientious"], "max_goals": 2})
    assert load_personas(write(tmp_path, [ok]))[0].rules.max_goals == 2  # case-insensitive
    bad = persona(
        "b",
        rules={"required_traits": ["funny"], "style_forbidden": ["PRACTICAL"], "max_goals": 1},
    )
    message = "\n".join(problems_of(write(tmp_path, [bad])))
    assert "field personality.traits: lacks 'funny' (rules.required_traits)" in message
    assert "field personality.style: contains 'PRACTICAL' (rules.style_forbidden)" in message
    assert "field personality.goals: 2 goals, over rules.max_goals=1" in message


def test_known_model_is_accepted(tmp_path: Path) -> None:
    loaded = load_personas(write(tmp_path, [persona("a", model=KNOWN_MODEL, temperature=0)]))
    assert loaded[0].model == KNOWN_MODEL
    assert loaded[0].temperature == 0.0


def test_file_level_problems(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1,\n "personas": [}')
    expected = f"{broken}: not valid JSON at line 2, column 15: Expecting value"
    assert problems_of(broken) == [expected]
    missing = tmp_path / "missing.json"
    assert problems_of(missing)[0].startswith(f"{missing}: cannot read")
    empty = write(tmp_path, [], version=2)
    assert problems_of(empty) == [
        f"{empty}: field version: must be 1, got 2",
        f"{empty}: field personas: must be a non-empty list of personas",
    ]


# ---- the prompt ---------------------------------------------------------------------------------


def test_system_prompts() -> None:
    narrative = Persona.model_validate(persona("a"))
    text = narrative.system_prompt()
    assert text.startswith("You are Person a, night-shift nurse. Scans codes on her rounds.")
    assert "Your traits: conscientious, dry." in text
    assert "Your goals: keep her streak; get things fixed." in text
    as_json = Persona.model_validate(persona("a", prompt_format="json")).system_prompt()
    instruction, spec = as_json.split("\n", 1)
    assert "Act as the person" in instruction
    shown = ("name", "occupation", "description", "personality")
    assert json.loads(spec) == {k: persona("a")[k] for k in shown}  # no twin, rules or model
    for p in load_personas("default"):  # each fits easily in a small model's 2048 tokens
        assert len(p.system_prompt()) < 1500


# ---- saving -------------------------------------------------------------------------------------


def test_save_is_atomic_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "people.json"
    first = [Persona.model_validate(persona("a"))]
    save_personas(path, first)
    assert not (tmp_path / "people.json.bak").exists()
    assert load_personas(path) == first
    original = path.read_text()
    second = [*first, Persona.model_validate(persona("b", temperature=0.5))]
    save_personas(path, second)
    assert (tmp_path / "people.json.bak").read_text() == original
    assert load_personas(path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.json", "people.json.bak"]


def test_save_refuses_invalid_personas_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "people.json"
    save_personas(path, [Persona.model_validate(persona("a"))])
    before = path.read_text()
    duplicate = [Persona.model_validate(persona("a"))] * 2
    unknown = [Persona.model_validate(persona("a", model=UNKNOWN_MODEL))]
    for personas in (duplicate, unknown):
        with pytest.raises(PersonaFileError, match=f"{path}: persona 'a'"):
            save_personas(path, personas)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.json"]


# ---- the command line ---------------------------------------------------------------------------


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, [persona("a"), persona("b")], "good.json")
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: 2 personas, valid\n"
    bad = write(tmp_path, [persona("a", temperature=9), persona("b", twin={})], "bad.json")
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: persona 'a' (#1) field temperature:" in err
    assert f"{bad}: persona 'b' (#2) field twin.segment: required" in err
    assert main(["validate"]) == 2  # argparse's usage error
    assert "usage: python -m arena_rl personas" in capsys.readouterr().err


def test_cli_population_prints_a_preset_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["population", "default", "--n-users", "300"]) == 0
    out = capsys.readouterr().out
    preset = tmp_path / "from_personas.yaml"
    preset.write_text(out)
    spec = load_population(preset)
    assert spec.name == "personas_default"
    assert "# save as conf/population/personas_default.yaml" in out
    assert spec.n_users == 300
    assert [s.name for s in spec.segments] == [p.id for p in load_personas("default")]


# ---- personas as a population -------------------------------------------------------------------


def test_population_from_personas_applies_overrides_and_normalises_shares(
    tmp_path: Path,
) -> None:
    data = [
        persona("nurse", twin={"segment": "achiever", "share": 3, "traits": {"habit": 1.4}}),
        persona(
            "gamer",
            twin={
                "segment": "farmer",
                "traits": {"xp_sensitivity": 2.5, "feedback_quality": 0.2, "scan_rate": 9.0},
            },
        ),
    ]
    personas = load_personas(write(tmp_path, data))
    base = {s.name: s for s in load_population("default").segments}
    spec = population_from_personas(personas, n_users=200)
    nurse, gamer = spec.segments
    assert (nurse.name, gamer.name) == ("nurse", "gamer")
    assert (nurse.share, gamer.share) == pytest.approx((0.75, 0.25))
    assert spec.n_users == 200
    assert nurse.habit.median() == 1.4  # overridden ...
    assert nurse.intrinsic == base["achiever"].intrinsic  # ... the rest is the segment's
    # a new centre, the spread kept: normal mean, lognormal median, beta mean
    assert (gamer.xp_sensitivity.a, gamer.xp_sensitivity.b) == (
        2.5,
        base["farmer"].xp_sensitivity.b,
    )
    assert (gamer.scan_rate.kind, gamer.scan_rate.a) == ("lognormal", 9.0)
    quality, farmer_quality = gamer.feedback_quality, base["farmer"].feedback_quality
    assert quality.median() == pytest.approx(0.2)
    assert quality.a + quality.b == pytest.approx(farmer_quality.a + farmer_quality.b)
    assert twin_traits(personas[1])["feedback_quality"] == {"a": 1.84, "b": 7.36}
    default = load_population("default")
    assert (spec.initial_share, spec.enrol_days) == (default.initial_share, default.enrol_days)


def test_persona_population_runs_in_the_simulator() -> None:
    personas = load_personas("default")
    spec = population_from_personas(personas)
    assert len(spec.segments) == len(personas)
    assert sum(s.share for s in spec.segments) == pytest.approx(1.0)
    scenario = load_scenario("default")
    model = scenario.model(spec, 2, 0, 280)
    economies = scenario.knobs.array([scenario.base_economy()] * 2)
    active = [model.step(economies).active for _ in range(3)]
    assert np.all(np.array(active) > 0)


def test_population_from_personas_refuses_what_a_preset_would(tmp_path: Path) -> None:
    personas = load_personas(write(tmp_path, [persona("a")]))
    with pytest.raises(SpecError, match="n_users"):
        population_from_personas(personas, n_users=1)
    with pytest.raises(SpecError, match="a prior over populations"):
        population_from_personas(personas, base="prior")
    twins = [personas[0], copy.deepcopy(personas[0])]
    with pytest.raises(SpecError, match="distinct"):
        population_from_personas(twins)


def test_a_persona_file_is_a_population_wherever_a_preset_is_loaded(tmp_path: Path) -> None:
    spec = load_population(str(DEFAULT_PERSONAS))
    assert spec.name == "personas_default"
    assert [s.name for s in spec.segments] == [p.id for p in load_personas("default")]
    bad = write(tmp_path, [persona("a", temperature=3), persona("b", twin={"segment": "x"})])
    with pytest.raises(SpecError, match=r"(?s)'a' \(#1\) field temperature.*'b' \(#2\) field twin"):
        load_population(bad)
