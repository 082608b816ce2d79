"""Model answers -> decisions: clean, repairable and unusable answers (recorded strings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.llm import LLMAgent, _summary
from agents.llm_answer import answer_schema, parse_answer, parse_move
from arena_rl.agent import VariantInfo
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.llm import Usage
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.economy import (
    DEFAULT_ECONOMY,
    ECONOMY_KEYS,
    KNOBS,
    validate_overrides,
)
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.scenarios.gamification.specs import LEVERS

KEYS = list(ECONOMY_KEYS)


def test_clean_directions_answer() -> None:
    text = json.dumps(
        {"changes": {"scanXp": "raise", "photoXp": "lower", "feedbackXp": "keep"}, "reasoning": "r"}
    )
    answer = parse_answer(text, KEYS)
    assert answer.usable and answer.repairs == ()
    assert answer.directions == {"scanXp": "raise", "photoXp": "lower"}
    assert answer.reasoning == "r"


@pytest.mark.parametrize(
    ("text", "directions"),
    [
        # cut off by the token limit, inside a string, after a colon, after a comma
        ('{"changes": {"scanXp": "lower", "photoXp": "rai', {"scanXp": "lower"}),
        ('{"changes": {"scanXp": "lower", "photoXp":', {"scanXp": "lower"}),
        ('{"changes": {"scanXp": "lower",', {"scanXp": "lower"}),
        ('{"changes": {"scanXp": "raise"}, "reasoning": "because the da', {"scanXp": "raise"}),
    ],
)
def test_truncated_json_is_completed(text: str, directions: dict[str, str]) -> None:
    answer = parse_answer(text, KEYS)
    assert answer.usable, answer.error
    assert answer.directions == directions
    assert "completed truncated JSON" in answer.repairs


def test_prose_and_code_fences_around_json_are_ignored() -> None:
    text = (
        'Sure! Here is my decision:\n```json\n{"changes": {"scanXp": "up"}, "reasoning": "x"}\n```'
    )
    answer = parse_answer(text, KEYS)
    assert answer.directions == {"scanXp": "raise"}


def test_unknown_keys_are_dropped_and_said_why() -> None:
    text = '{"changes": {"scanXp": "lower", "bonusXp": "raise", "streak": 3}, "reasoning": ""}'
    answer = parse_answer(text, KEYS)
    assert answer.directions == {"scanXp": "lower"}
    assert any("'bonusXp'" in r for r in answer.repairs)
    assert any("'streak'" in r for r in answer.repairs)


def test_keys_outside_the_agents_keys_are_dropped() -> None:
    answer = parse_answer('{"changes": {"scanXp": "raise", "photoXp": "raise"}}', ["photoXp"])
    assert answer.directions == {"photoXp": "raise"}


def test_negative_nan_and_non_numeric_values_are_dropped() -> None:
    text = '{"changes": {"scanXp": -3, "photoXp": NaN, "feedbackXp": "lots", "issueReportXp": 30}}'
    answer = parse_answer(text, KEYS)
    assert answer.values == {"issueReportXp": 30.0}
    assert answer.directions == {}
    assert len(answer.repairs) == 3


def test_key_spelling_synonyms_and_numeric_strings_are_repaired() -> None:
    text = '{"changes": {"scan_xp": "Increase", "PHOTOXP": "reduce", "streakBonusCap": "60"}}'
    answer = parse_answer(text, KEYS)
    assert answer.directions == {"scanXp": "raise", "photoXp": "lower"}
    assert answer.values == {"streakBonusCap": 60.0}
    assert any("as scanXp" in r for r in answer.repairs)


def test_sdk_style_and_top_level_changes_are_read() -> None:
    sdk = parse_answer('{"economyOverrides": {"scanXp": 12}, "reasoning": "r"}', KEYS)
    assert sdk.values == {"scanXp": 12.0}
    top = parse_answer('{"scanXp": 12, "reasoning": "r"}', KEYS)
    assert top.values == {"scanXp": 12.0} and top.reasoning == "r"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("I would raise scanXp a little.", "no JSON object"),
        ("", "no JSON object"),
        ('{"reasoning": "nothing to change"}', "no 'changes'"),
        ('{"changes": ["scanXp"], "reasoning": ""}', "not an object"),
        ('{"changes": {"scanXp": "raise"}} }}} {', None),  # trailing junk after a valid object
        ("[1, 2, 3]", "no JSON object"),
        ('{"changes": {"scanXp": "raise"', None),
        ("{{{{", "no JSON object"),
    ],
)
def test_unusable_answers_say_why(text: str, error: str | None) -> None:
    answer = parse_answer(text, KEYS)
    if error is None:
        assert answer.usable and answer.directions == {"scanXp": "raise"}
    else:
        assert not answer.usable and answer.error is not None and error in answer.error


def test_schema_lists_every_key_with_a_direction_enum() -> None:
    schema = answer_schema("directions", KEYS)
    changes = schema["properties"]["changes"]
    assert changes["required"] == KEYS
    assert changes["properties"]["scanXp"]["enum"] == ["raise", "keep", "lower"]
    values = answer_schema("values", KEYS)["properties"]["changes"]
    assert values["properties"]["scanXp"] == {"type": "number", "minimum": 0}


def agent(**kwargs: object) -> LLMAgent:
    a = LLMAgent(**kwargs)  # type: ignore[arg-type]
    a.info_ = VariantInfo.of("v")
    return a


def test_directions_become_bounded_steps_and_values_are_held_to_the_delta_limit() -> None:
    a = agent(step_pct=10)
    current = dict(DEFAULT_ECONOMY)
    text = '{"changes": {"scanXp": "raise", "photoXp": "lower", "scanDailyCap": "raise"}}'
    target = a.targets(parse_answer(text, KEYS), current)
    assert target["scanXp"] == pytest.approx(11.0)
    assert target["photoXp"] == pytest.approx(9.0)
    assert target["scanDailyCap"] == 22.0  # caps stay whole numbers
    values = a.targets(parse_answer('{"changes": {"scanXp": 1000, "photoXp": 0}}', KEYS), current)
    limit = a.info_.delta_limit_pct / 100
    assert values["scanXp"] == pytest.approx(10 * (1 + limit))
    assert values["photoXp"] == pytest.approx(10 * (1 - limit))
    validate_overrides(values)


def test_a_raise_from_zero_starts_from_a_step_of_the_default() -> None:
    a = agent(step_pct=10)
    current = {**DEFAULT_ECONOMY, "photoXp": 0.0}
    target = a.targets(parse_answer('{"changes": {"photoXp": "raise"}}', KEYS), current)
    assert target["photoXp"] == pytest.approx(1.0)


def test_bad_hyperparameters_fail_when_built_or_reset() -> None:
    with pytest.raises(ValueError, match="answer"):
        LLMAgent(answer="poem")
    with pytest.raises(ValueError, match="step_pct"):
        LLMAgent(step_pct=0)
    # knobs are the scenario's: checked when the agent learns which scenario it plays
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['bonusXp'\].*scanXp"):
        LLMAgent(keys=["bonusXp"]).reset(VariantInfo.of("v"), np.random.default_rng(0))
    moves = {"boost": {"what": "more gold", "scale": {"goldXp": 1.2}}}
    with pytest.raises(ValueError, match=r"moves.boost.scale: unknown knob\(s\) \['goldXp'\]"):
        LLMAgent(moves=moves).reset(VariantInfo.of("v"), np.random.default_rng(0))


def test_agent_pickles_after_reset_without_its_connections(tmp_path) -> None:
    import pickle

    a = LLMAgent(cache_path=str(tmp_path / "c.sqlite"))
    a.reset(VariantInfo.of("v"), np.random.default_rng(0))
    clone = pickle.loads(pickle.dumps(a))
    assert clone.client_ is None and clone.step_pct == a.step_pct


def test_history_summarises_moves_in_few_words() -> None:
    base = dict(DEFAULT_ECONOMY)
    down = {k: v * 0.9 for k, v in base.items()}
    assert _summary(down, base, KEYS) == "lowered every key"
    mixed = {**{k: v * 0.9 for k, v in base.items() if k != "scanXp"}, "scanXp": 11.0}
    assert _summary(mixed, base, KEYS) == "raised scanXp; lowered every key but scanXp"
    assert _summary({"photoXp": 5.0}, base, KEYS) == "lowered photoXp"


MOVES = ["keep", "undo", "trim", "reports", "cheaper", "trim_cost", "raise_value"]


@pytest.mark.parametrize(
    ("text", "move", "repaired"),
    [
        ('{"move": "trim", "reasoning": "cost"}', "trim", False),
        ('{"move": "Trim ", "reasoning": "cost"}', "trim", False),
        ('```json\n{"move": "reports", "reasoning": "r"}\n```', "reports", False),
        ('{"move": "keep", "reasoning": "wait', "keep", True),  # cut off mid-reasoning
        ('{"choice": "undo it", "reasoning": "worse"}', "undo", True),
        ('{"move": "hold", "reasoning": "r"}', "keep", True),  # a synonym
        ("cheaper", "cheaper", True),  # no JSON at all, one known word
        ('{"move": "trim cost", "reasoning": "r"}', "trim_cost", True),  # spaces for underscores
        ('{"move": "I pick raise_value", "reasoning": "r"}', "raise_value", True),
    ],
)
def test_move_answers_are_read_or_repaired(text: str, move: str, repaired: bool) -> None:
    answer = parse_move(text, MOVES)
    assert answer.usable and answer.move == move, answer
    assert bool(answer.repairs) == repaired


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"move": "raise everything"}', "no single known move"),
        ('{"move": "trim or cheaper"}', "no single known move"),
        ('{"move": "raise cost"}', "no single known move"),
        ('{"reasoning": "no move"}', "has no 'move'"),
        ("", "no single known move"),
    ],
)
def test_move_answers_without_one_known_move_are_unusable(text: str, error: str) -> None:
    answer = parse_move(text, MOVES)
    assert not answer.usable and answer.move is None
    assert answer.error is not None and error in answer.error


def test_move_schema_offers_exactly_the_moves() -> None:
    schema = answer_schema("moves", MOVES)
    assert schema["properties"]["move"]["enum"] == MOVES
    assert schema["required"] == ["move", "reasoning"]


class ScriptedClient:
    """Stands in for the model: answers each question with the next scripted text and keeps
    the messages it was asked (an :class:`arena_rl.llm.LLMClient` without a model)."""

    def __init__(self, *answers: str) -> None:
        self.answers, self.asked = list(answers), []
        self.usage = Usage()

    def complete(self, messages: list[dict[str, str]], schema: object, sampling: object) -> str:
        self.asked.append(messages)
        return self.answers.pop(0)


def scripted(*answers: str, **kwargs: object) -> tuple[LLMAgent, ScriptedClient]:
    agent, client = LLMAgent(**kwargs), ScriptedClient(*answers)  # type: ignore[arg-type]
    agent.client_ = client  # type: ignore[assignment]
    agent.reset(VariantInfo.of("v"), np.random.default_rng(0))
    return agent, client


def test_default_moves_are_the_scenarios_levers_in_their_directions() -> None:
    """On gamification: trim became trim_cost (the same keys, -15 %), reports raise_value (the
    value lever: report XP and the scan cap, +15 %); retention and activity answer falling
    metrics and are not offered, nor is a move of every knob (it would cut the value lever)."""
    agent, _ = scripted()
    assert list(agent.moves_) == ["trim_cost", "raise_value"]
    assert agent.moves_["trim_cost"]["scale"] == dict.fromkeys(LEVERS["cost"], 0.85)
    assert agent.moves_["raise_value"]["scale"] == dict.fromkeys(LEVERS["value"], 1.15)
    assert "streakBonusCap" in agent.moves_["trim_cost"]["what"]
    assert list(agent.offered()) == ["keep", *agent.moves_]


def test_a_chosen_move_scales_its_knobs_and_the_prompt_quotes_the_scenario() -> None:
    agent, client = scripted('{"move": "trim_cost", "reasoning": "XP for showing up"}')
    config = dict(DEFAULT_ECONOMY)
    update = agent.decide(confident_signals(0), config)
    assert update is not None and update.reasoning.startswith("[llm] trim_cost")
    assert update.overrides == KNOBS.rounded({k: config[k] * 0.85 for k in LEVERS["cost"]})
    system, user = client.asked[0][0]["content"], client.asked[0][1]["content"]
    assert load_scenario().describe() in system  # what users do, every knob, the objective
    assert "- scanXp: default 10 XP" in system
    assert "- trim_cost: 15% less of the cost lever" in user
    assert "undo" in agent.offered()


def test_directions_prompt_lists_every_knob_with_its_default() -> None:
    agent, client = scripted(
        '{"changes": {"scan_xp": "raise"}, "reasoning": "r"}', answer="directions"
    )
    update = agent.decide(confident_signals(0), dict(DEFAULT_ECONOMY))
    assert update is not None and update.overrides == {"scanXp": 11.0}
    user = client.asked[0][1]["content"]
    assert "Economy now (default): scanXp 10 (10), feedbackXp 15 (15)" in user
    assert f"Keys you may change: {', '.join(KEYS)}." in user


def confident_signals(day: int) -> Signals:
    metrics = {m: MetricValue(1.0, 0.1, 1000, "high") for m in METRICS}
    return Signals(1000, 500, 600, 3000, day, metrics)  # type: ignore[arg-type]
