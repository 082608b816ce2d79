"""LLM persona users inside an experiment: beside the population, never in its statistics,
their days on the event stream and in the log, their model costed, budgeted and failing over
to their behavioural-model twin."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from server_support import serve
from test_live import stream_until

from agents.random_agent import RandomAgent
from arena_rl.core.events import DecisionMade, PersonaActed
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.eventlog import schema as s
from arena_rl.eventlog.files import read_log
from arena_rl.eventlog.recorder import EventLogRecorder
from arena_rl.experiment import run_experiment
from arena_rl.live.messages import encode, from_events, from_log
from arena_rl.llm import smollm2_path
from arena_rl.personas.calibration import BEHAVIOURS, CHANGES, calibrate, markdown
from arena_rl.personas.users import PersonaUsersConfig, _parse
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, xp_for_day

SMALL: dict[str, Any] = {"n_users": 400, "days": 6}


def closed_port() -> int:
    """A localhost port nothing listens on: a real connection refused, every time."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable(**extra: Any) -> PersonaUsersConfig:
    """Persona users whose model server is down: every call really fails."""
    llm = {"backend": "openai", "model": "gpt-4o-mini", "max_retries": 0,
           "base_url": f"http://127.0.0.1:{closed_port()}/v1"}  # fmt: skip
    return PersonaUsersConfig.parse({"per_arm": 3, "llm": llm, **extra})


class Collect:
    """Every event the stream delivers."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_day(self, events: Any) -> None:
        self.events += events


def test_persona_users_leave_the_populations_results_unchanged() -> None:
    plain = run_experiment({"random": RandomAgent()}, seed=4, **SMALL)
    watched = Collect()
    with_personas = run_experiment(
        {"random": RandomAgent()},
        seed=4,
        persona_users=unreachable(),
        subscribers=[watched],
        **SMALL,
    )
    assert with_personas.objective == plain.objective
    assert with_personas.comparisons == plain.comparisons
    assert with_personas.audit == plain.audit
    acted = [e for e in watched.events if isinstance(e, PersonaActed)]
    assert len(acted) == 2 * 3 * SMALL["days"] - sum(  # every user, every day, until it quits
        SMALL["days"] - 1 - e.day for e in acted if e.quit
    )
    assert len({e.arm for e in acted}) == 2 and CONTROL_ARM in {e.arm for e in acted}


def test_a_failing_model_hands_each_day_to_the_twin_and_counts_the_fault() -> None:
    watched = Collect()
    result = run_experiment(
        {"random": RandomAgent()},
        seed=1,
        persona_users=unreachable(max_failures=2),
        subscribers=[watched],
        **SMALL,
    )
    acted = [e for e in watched.events if isinstance(e, PersonaActed)]
    assert acted and all(e.source == "twin" for e in acted)
    first = [e for e in acted if e.day == 0]
    assert all("BackendError" in e.fault for e in first)
    later = [e for e in acted if e.day >= 2]
    assert later and all(e.fault.startswith("stays with its twin") for e in later)
    totals = result.personas["random"]
    assert totals["twin_days"] == totals["days"] and totals["model_days"] == 0
    assert totals["faults"] == 3 * 2  # two failed days for each of the three users
    assert totals["metric_XP_VELOCITY"] == pytest.approx(totals["xp"] / (3 * SMALL["days"]))
    assert 0 <= totals["metric_RETENTION_RATE"] <= 1 and totals["metric_STREAK_LENGTH"] >= 0
    assert result.personas["usage"]["calls"] == 0


def test_the_twin_behaves_like_its_segment() -> None:
    """The fallback is the behavioural model itself: over many twin days, a farmer persona
    scans far more than a casual one, as their segments do."""
    config = unreachable(ids=("sam", "lena"), per_arm=2, max_failures=1)
    watched = Collect()
    run_experiment(
        {"random": RandomAgent()}, seed=2, persona_users=config, subscribers=[watched],
        n_users=400, days=28,
    )  # fmt: skip
    acted = [e for e in watched.events if isinstance(e, PersonaActed)]
    scans = {p: [e.scans for e in acted if e.persona == p] for p in config.ids or ()}
    assert sum(scans["sam"]) > 2 * sum(scans["lena"]), scans


def test_the_app_awards_xp_by_its_rules() -> None:
    e = dict(DEFAULT_ECONOMY)
    # 25 scans (20 count), 12 feedback (10 count), 1 report, streak 3 after today
    expected = min(3 * 5.0, 50.0) + 15.0 + 20 * 10.0 + 10 * 15.0 + 25.0
    assert xp_for_day(e, 25, 12, 1, 3) == expected
    assert xp_for_day(e, 0, 0, 0, 0) == 0.0  # a closed app earns nothing
    e["streakBonusCap"] = 10.0
    assert xp_for_day(e, 0, 0, 0, 30) == 10.0


def test_an_answer_that_is_not_the_json_asked_for_is_refused() -> None:
    good = {"reason": "x", "today": "use the app", "scans": 40, "feedback": 2, "reports": 0}
    read = _parse(json.dumps(good))
    assert read["scans"] == 30 and read["open_app"] and not read["quit"]  # clamped to the schema
    assert _parse(json.dumps({**good, "today": "quit for good"}))["quit"]
    for bad in ("not json", json.dumps({**good, "today": "maybe"}),
                json.dumps({"scans": 1}), json.dumps({**good, "scans": "many"})):  # fmt: skip
        with pytest.raises(ValueError):
            _parse(bad)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"per_arm": 0}, "persona_users.per_arm"),
        ({"file": "no_such_file"}, "no_such_file"),
        ({"ids": ["nobody"]}, "nobody"),
        ({"llm": {"budget_usd": 0}}, "persona_users.llm.budget_usd"),
        ({"llm": {"temperature": 3}}, "persona_users.llm.temperature"),
        ({"llm": {"prices": "/no/such/prices.yaml"}}, "price table"),
        ({"colour": "red"}, "persona_users.colour"),
    ],
)
def test_bad_persona_settings_are_refused_naming_the_field(data: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        PersonaUsersConfig.parse(data)


def test_persona_users_need_an_xp_economy() -> None:
    with pytest.raises(ValueError, match="no XP economy"):
        run_experiment(
            {"random": RandomAgent()},
            seed=0,
            scenario=load_scenario("pricing"),
            population=None,
            persona_users=unreachable(),
            n_users=200,
            days=2,
        )


def test_persona_days_are_logged_and_replay_as_they_streamed(tmp_path: Path) -> None:
    scenario = load_scenario("default")
    recorder = EventLogRecorder(scenario.user_events, tournament=0)
    watched = Collect()
    run_experiment(
        {"random": RandomAgent()},
        seed=5,
        persona_users=unreachable(per_arm=2),
        subscribers=[recorder, watched],
        **SMALL,
    )
    tables = recorder.tables()
    events = tables["events"].to_pylist()
    logged = [e for e in events if e["ocel_type"] == s.PERSONA_ACTED]
    assert len(logged) == sum(isinstance(e, PersonaActed) for e in watched.events)
    assert {json.loads(e["detail"])["persona"] for e in logged} <= {
        p.id for p in unreachable().personas()
    }
    names = {e.arm: e.agent for e in watched.events if isinstance(e, DecisionMade)}
    live = [encode(m) for m in from_events(watched.events, 0, names)]
    replayed = [encode(m) for m in from_log(tables)]
    assert [m for m in replayed if '"persona"' in m] == [m for m in live if '"persona"' in m]


# ---- the real local model -----------------------------------------------------------------


def local(tmp_path: Path, **llm: Any) -> PersonaUsersConfig:
    return PersonaUsersConfig.parse(
        {"per_arm": 2, "llm": {"cache_path": str(tmp_path / "cache.sqlite"), **llm}}
    )


@pytest.mark.llm
def test_persona_users_on_the_local_model_decide_and_a_rerun_is_free(tmp_path: Path) -> None:
    config = local(tmp_path)

    def play() -> tuple[Any, list[PersonaActed]]:
        watched = Collect()
        result = run_experiment(
            {"random": RandomAgent()}, seed=3, persona_users=config, subscribers=[watched],
            n_users=400, days=3,
        )  # fmt: skip
        return result, [e for e in watched.events if isinstance(e, PersonaActed)]

    first, acted = play()
    usage = first.personas["usage"]
    assert usage["calls"] + usage["cache_hits"] == len(acted) > 0
    model = [e for e in acted if e.source == "model"]
    assert len(model) >= 0.8 * len(acted), [e.fault for e in acted if e.fault]
    assert all(e.reason and e.reason != "(behavioural-model twin)" for e in model)
    assert usage["cost_usd"] == 0.0  # your own machine: no bill
    again, replayed = play()
    assert again.personas["usage"]["calls"] == 0
    assert again.personas["usage"]["cache_hits"] == len(replayed)
    # the same days; only the tokens differ (a cached answer costs none)
    assert [dataclasses.replace(e, tokens=0) for e in replayed] == [
        dataclasses.replace(e, tokens=0) for e in acted
    ]


@pytest.mark.llm
def test_the_budget_cap_stops_model_calls_and_the_run_goes_on(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"  # a price for the local model, so that the cap bites
    prices.write_text(f"local: {{{smollm2_path().name}: {{prompt: 100.0, completion: 100.0}}}}\n")
    cap = 0.5
    config = local(tmp_path, prices=str(prices), budget_usd=cap, max_tokens=64)
    watched = Collect()
    result = run_experiment(
        {"random": RandomAgent()}, seed=3, persona_users=config, subscribers=[watched],
        n_users=400, days=4,
    )  # fmt: skip
    usage = result.personas["usage"]
    acted = [e for e in watched.events if isinstance(e, PersonaActed)]
    assert 0 < usage["calls"] < len(acted)
    assert usage["cost_usd"] <= cap and not math.isnan(usage["cost_usd"])
    assert usage["budget_refused"] >= 1
    assert any(e.fault.startswith("budget reached") for e in acted)
    assert acted[-1].source == "twin"
    assert len(result.objective) == 2  # the experiment itself finished


@pytest.mark.llm
@pytest.mark.slow
def test_a_tournament_with_persona_users_logs_them_to_mlflow(tmp_path: Path) -> None:
    """As a user types it: the cost estimate before any call, the persona block under the
    leaderboard, persona metrics on the agents' runs and their days, reasons included, in the
    event log the parent run keeps."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        sys.executable, "scripts/tournament.py", "+agents=[random]", "tournament.n_tournaments=1",
        "tournament.days=3", "population.n_users=400", "progress=false", "ray.num_workers=0",
        "+persona_users.per_arm=1", "+persona_users.ids=[maya]", f"tracking.uri={uri}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    env = {**os.environ, "ARENA_RL_LLM_CACHE": str(tmp_path / "answers.sqlite")}
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "worst-case cost $0.0000" in done.stdout  # the local model is free
    assert "Persona users (not in the statistics):" in done.stdout
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "arena_rl"]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    days = {arm: runs[arm].data.metrics["persona/days"] for arm in ("random", CONTROL_ARM)}
    assert all(1 <= d <= 3 for d in days.values())  # every day until the persona quits
    parent = next(r for r in runs.values() if "mlflow.parentRunId" not in r.data.tags)
    asked = parent.data.metrics["persona/calls"] + parent.data.metrics["persona/cache_hits"]
    tables = read_log(Path(client.download_artifacts(parent.info.run_id, "eventlog/00000")))
    acted = [e for e in tables["events"].to_pylist() if e["ocel_type"] == s.PERSONA_ACTED]
    assert len(acted) == sum(days.values()) == asked
    assert all(json.loads(e["detail"])["reason"] for e in acted)


def test_the_calibration_table_sets_persona_users_beside_the_behavioural_model() -> None:
    config = unreachable(ids=("maya", "sam", "lena"), per_arm=3)  # the twins decide every day
    rows, usage = calibrate(config, CHANGES, days=3, seeds=[0], model_users=2000)
    assert [(r.change, r.behaviour) for r in rows] == [(c, b) for c in CHANGES for b in BEHAVIOURS]
    model = {(r.change, r.behaviour): r.model for r in rows}
    assert model["remove all XP", "participation"] < -0.1  # fewer users open an app paying nothing
    assert model["double scan XP", "scans"] > 0.1
    assert model["no feedback XP", "feedback"] < -0.2
    assert all(r.model_share == 0 and r.persona_days == 3 * 3 for r in rows)
    assert usage["calls"] == 0
    table = markdown(rows)
    assert table.count("\n| ") == len(rows) and "Same direction in" in table


def test_the_served_experiment_has_persona_users_on_its_page_and_in_mlflow(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with serve(
        persona_users=unreachable(per_arm=2),
        tracking_enabled=True,
        tracking_uri=uri,
        tracking_out_dir=tmp_path,
    ) as served:
        served.advance(2)
        wanted = 1 + 2 * 3 + 2 * 3 * 2  # run, a day per arm and day, a persona per user and day
        messages = list(stream_until(served.url + "/live/stream", wanted))
        run_id = served.admin("log")["runId"]
    personas = [m for m in messages if m["type"] == "persona"]
    assert {m["arm"] for m in personas} == {"Control", "Alpha", "Beta"}
    assert {m["day"] for m in personas} == {0, 1}
    assert all(m["source"] == "twin" and m["reason"] for m in personas)
    client = MlflowClient(uri)
    children = client.search_runs(
        [client.get_run(run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'"
    )
    days = {c.info.run_name: c.data.metrics["persona/days"] for c in children}
    assert days == {"Alpha": 4, "Beta": 4, CONTROL_ARM: 4} or all(
        1 <= d <= 4
        for d in days.values()  # a twin may quit on day 0
    )


@pytest.mark.llm
@pytest.mark.slow
def test_persona_users_on_a_hosted_style_backend(llama_server: str, tmp_path: Path) -> None:
    """The OpenAI-compatible path, against a real server on this machine (llama-cpp-python's,
    serving the same model): the same persona days, costed as unknown (no price listed)."""
    llm = {"backend": "openai", "model": "smollm2", "base_url": llama_server,
           "response_format": "json_object", "cache_path": str(tmp_path / "c.sqlite")}  # fmt: skip
    config = PersonaUsersConfig.parse({"per_arm": 1, "ids": ["maya"], "llm": llm})
    watched = Collect()
    result = run_experiment(
        {"random": RandomAgent()}, seed=2, persona_users=config, subscribers=[watched],
        n_users=400, days=3,
    )  # fmt: skip
    acted = [e for e in watched.events if isinstance(e, PersonaActed)]
    usage = result.personas["usage"]
    assert usage["calls"] == len(acted) > 0 and usage["prompt_tokens"] > 100
    assert any(e.source == "model" for e in acted), [e.fault for e in acted]
    assert math.isnan(usage["cost_usd"])  # "smollm2" has no price: unknown, not free
