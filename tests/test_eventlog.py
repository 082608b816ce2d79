"""The event log: OCEL-shaped tables that agree with what the experiment did, decision points,
the user sample, and log folders written whole or not at all."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from agents.common import BaseAgent
from agents.random_agent import RandomAgent
from agents.ucb import UCB1
from arena_rl.agent import VariantInfo
from arena_rl.config import ConfigError, compose_config, settings_from
from arena_rl.core.events import Event, UserDay
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.eventlog import schema
from arena_rl.eventlog.files import read_log, to_parquet, write_log
from arena_rl.eventlog.recorder import EventLogRecorder
from arena_rl.experiment import ExperimentResult, run_experiment
from arena_rl.scenarios import load_scenario

SMALL = {"n_users": 1500, "days": 10}


class UserDays:
    """Keeps the users' days the core publishes, to check the log against."""

    user_events = True

    def __init__(self) -> None:
        self.days: list[UserDay] = []

    def on_day(self, events: Sequence[Event]) -> None:
        self.days += [e for e in events if isinstance(e, UserDay)]


class UnknownKey(BaseAgent):
    """Asks for a knob that does not exist every day: rejected, until the breaker trips."""

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return ConfigUpdate({"xpMultiplier": 2.0}, "no such key")


def record(
    agents: Mapping[str, object], users: int | str = "all", seed: int = 0, **kwargs: object
) -> tuple[dict[str, pa.Table], ExperimentResult, UserDays]:
    scenario = kwargs.pop("scenario", load_scenario())
    recorder = EventLogRecorder(scenario.user_events, users=users, seed=seed, tournament=7)  # type: ignore[attr-defined]
    days = UserDays()
    settings = {**SMALL, **kwargs}
    result = run_experiment(
        agents,
        seed=seed,
        scenario=scenario,
        subscribers=[recorder, days],
        **settings,  # type: ignore[arg-type]
    )
    return recorder.tables(), result, days


def count(table: pa.Table, column: str, value: object) -> int:
    return int(pc.sum(pc.equal(table[column], value)).as_py() or 0)


def test_user_events_are_the_users_days() -> None:
    tables, _, days = record({"ucb": UCB1(), "random": RandomAgent()})
    events = tables["events"]
    cols = {k: np.concatenate([d.columns[k] for d in days.days]) for k in days.days[0].columns}
    assert count(events, "ocel_type", "scan") == np.count_nonzero(cols["scans"])
    assert count(events, "ocel_type", "churned") == np.count_nonzero(cols["churned"])
    assert count(events, "ocel_type", "user enrolled") == np.count_nonzero(cols["enrolled_today"])
    assert count(events, "ocel_type", "7-day streak") == np.count_nonzero(cols["streak_week"])
    scans = events.filter(pc.equal(events["ocel_type"], "scan"))
    assert pc.sum(scans["value"]).as_py() == pytest.approx(float(cols["scans"].sum()), rel=1e-6)
    xp = events.filter(pc.equal(events["ocel_type"], "XP awarded"))
    assert pc.sum(xp["value"]).as_py() == pytest.approx(float(cols["xp"].sum()), rel=1e-5)
    # reports are drawn (Poisson) around the model's expected counts
    reports = events.filter(pc.equal(events["ocel_type"], "report"))
    expected = float(cols["reports"].sum())
    assert abs(pc.sum(reports["value"]).as_py() - expected) < 5 * np.sqrt(expected)
    # every user seen enrolled has an object, assigned to its arm
    users = tables["objects"].filter(pc.equal(tables["objects"]["ocel_type"], schema.USER))
    assert len(users) == np.count_nonzero(cols["enrolled_today"])
    assert set(pc.unique(users["arm"]).to_pylist()) == {CONTROL_ARM, "ucb", "random"}


def test_every_link_names_an_object_and_ids_are_unique() -> None:
    tables, _, _ = record({"ucb": UCB1(), "bad": UnknownKey()}, users=30)
    objects = set(tables["objects"]["ocel_id"].to_pylist())
    events = tables["events"]["ocel_id"].to_pylist()
    assert len(set(events)) == len(events)
    assert len(objects) == len(tables["objects"])
    e2o, o2o = tables["event_objects"], tables["object_objects"]
    assert set(e2o["ocel_object_id"].to_pylist()) <= objects
    assert set(e2o["ocel_event_id"].to_pylist()) <= set(events)
    ends = set(o2o["ocel_source_id"].to_pylist()) | set(o2o["ocel_target_id"].to_pylist())
    assert ends <= objects
    assert set(tables["objects"]["ocel_type"].to_pylist()) == set(schema.OBJECT_TYPES)
    for stem in ("events", "objects", "event_objects", "object_objects"):
        assert tables[stem].schema.equals(schema.TABLES[stem]), stem
    knobs, metrics = load_scenario().knobs.keys, load_scenario().metrics
    assert tables["decisions"].schema.equals(schema.decision_schema(knobs, metrics))


def test_guardrail_answers_and_breaker_trips_are_events() -> None:
    tables, result, _ = record({"bad": UnknownKey()}, users="none")
    events = tables["events"]
    counts = result.guardrail_counts["bad"]
    assert count(events, "ocel_type", schema.UPDATE_REJECTED) == counts["rejected"] > 0
    rejected = events.filter(pc.equal(events["ocel_type"], schema.UPDATE_REJECTED))
    assert "INVALID_UPDATE" in rejected["code"].to_pylist()
    assert count(events, "ocel_type", schema.BREAKER_TRIPPED) == counts["breaker_trips"] > 0
    assert count(events, "ocel_type", schema.BREAKER_RECOVERED) == counts["breaker_resets"] > 0
    assert count(events, "ocel_type", "user enrolled") == 0  # users: none keeps no user event
    decisions = tables["decisions"].to_pylist()
    assert {d["outcome"] for d in decisions} <= {"rejected"}
    refused = [d for d in decisions if d["allowed_refusal"] == "CIRCUIT_BREAKER_ACTIVE"]
    assert refused  # the decision points while the breaker was on say so
    assert all(d["rejection_code"] == "CIRCUIT_BREAKER_ACTIVE" for d in refused)


def test_decision_points_carry_what_the_agent_saw_did_and_earned() -> None:
    tables, result, _ = record({"ucb": UCB1(), "random": RandomAgent()}, users="none")
    rows = tables["decisions"].to_pylist()
    assert len(rows) == 2 * SMALL["days"]  # decision interval 1
    for name in ("ucb", "random"):
        mine = [r for r in rows if r["agent"] == name]
        assert [r["day"] for r in mine] == list(range(SMALL["days"]))
        assert all(r["arm"] == name and r["tournament"] == 7 for r in mine)
        # the rewards add up to the arm's realised objective before the horizon
        assert sum(r["reward"] for r in mine) == pytest.approx(
            float(np.sum(result.daily_value[name])), rel=1e-12
        )
        counts = result.guardrail_counts[name]
        outcomes = [r["outcome"] for r in mine]
        assert outcomes.count("applied") + outcomes.count("clamped") == counts["accepted"]
        assert outcomes.count("clamped") == counts["clamped"]
        assert all(0 < r["probability"] <= 1 for r in mine)
        for r in mine:
            assert r["obs.experiment_days"] == r["day"]
            assert r["obs.RETENTION_RATE.confidence"] in ("low", "medium", "high")
            if r["outcome"] == "applied":  # an unclamped action lies inside the allowed ranges
                for key, value in json.loads(r["action"]).items():
                    assert r[f"action.{key}"] == value
                    assert (
                        r[f"allowed.{key}.low"] - 1e-9 <= value <= r[f"allowed.{key}.high"] + 1e-9
                    )
    holds = [r for r in rows if r["action"] is None]
    assert holds and all(r["outcome"] == "hold" for r in holds)
    assert all(r["action.scanXp"] is None for r in holds)


def test_the_log_changes_no_number_and_is_the_same_for_the_same_seed() -> None:
    agents = lambda: {"ucb": UCB1(), "random": RandomAgent()}  # noqa: E731
    plain = run_experiment(agents(), seed=3, **SMALL)  # type: ignore[arg-type]
    first, logged, _ = record(agents(), seed=3)
    again, _, _ = record(agents(), seed=3)
    assert logged.objective == plain.objective and logged.audit == plain.audit
    assert all(first[stem].equals(again[stem]) for stem in schema.TABLES)


def test_the_user_sample_is_that_many_users_per_arm_at_random() -> None:
    tables, _, _ = record({"random": RandomAgent()}, users=40, days=20)
    users = tables["objects"].filter(pc.equal(tables["objects"]["ocel_type"], schema.USER))
    per_arm = users.group_by("arm").aggregate([("ocel_id", "count")]).to_pylist()
    assert all(30 <= row["ocel_id_count"] <= 40 for row in per_arm)  # drawn among all users
    index = np.array([int(i.rsplit("/", 1)[1]) for i in users["ocel_id"].to_pylist()])
    assert index.max() > 400  # not simply the first to enrol (750 users per arm)


def test_pricing_logs_its_own_user_events() -> None:
    pricing = load_scenario("pricing")
    tables, _, days = record({"ucb": UCB1()}, scenario=pricing, days=40)
    events = tables["events"]
    cols = {k: np.concatenate([d.columns[k] for d in days.days]) for k in days.days[0].columns}
    assert count(events, "ocel_type", "prospect arrived") == np.count_nonzero(cols["arrived_today"])
    assert count(events, "ocel_type", "charged") == np.count_nonzero(cols["charged"])


def test_a_log_folder_is_written_whole_and_read_back_checked(tmp_path: Path) -> None:
    tables, _, _ = record({"random": RandomAgent()}, users=10, days=4)
    files = to_parquet(tables)
    folder = write_log(tmp_path / "00000", files)
    back = read_log(folder)
    assert all(back[stem].to_pylist() == tables[stem].to_pylist() for stem in schema.TABLES)
    assert not (tmp_path / "00000.tmp").exists()
    with pytest.raises(ValueError, match=r"missing decisions\.parquet"):
        write_log(tmp_path / "00001", {k: v for k, v in files.items() if k != "decisions.parquet"})
    assert not (tmp_path / "00001").exists()
    (folder / "objects.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"objects\.parquet is missing"):
        read_log(folder)
    pq.write_table(pa.table({"x": [1]}), folder / "objects.parquet")
    with pytest.raises(ValueError, match="does not have the event log's objects columns"):
        read_log(folder)


@pytest.mark.parametrize("users", ["-3", "lots", "2.5"])
def test_a_bad_user_sample_is_refused_naming_the_key(users: str) -> None:
    cfg = compose_config(["+agents=[random]", f"eventlog.users={users}"])
    with pytest.raises(ConfigError, match=r"eventlog\.users"):
        settings_from(cfg)


def test_the_log_is_on_by_default_and_can_be_switched_off() -> None:
    on = settings_from(compose_config(["+agents=[random]", "tournament.n_tournaments=1"]))
    off = settings_from(
        compose_config(["+agents=[random]", "tournament.n_tournaments=1", "eventlog.enabled=false"])
    )
    assert on.specs[0].eventlog_users == 100
    assert off.specs[0].eventlog_users is None


def test_process_views_need_the_event_log() -> None:
    overrides = ["+agents=[random]", "eventlog.process_views=true", "eventlog.enabled=false"]
    with pytest.raises(ConfigError, match=r"needs the event log"):
        settings_from(compose_config(overrides))


class Noting(BaseAgent):
    """Holds every other day, saying why in its notes (as the LLM agent does); moves otherwise."""

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        self.noted: list[str] = []

    def notes(self) -> list[str]:
        return list(self.noted)

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        day = signals.experiment_days
        if day % 2:
            return ConfigUpdate({"scanXp": current_config["scanXp"] + 1}, f"day {day}: up")
        self.noted.append(f"day {day}: no change: <b>steady</b>")
        return None


def test_a_hold_keeps_the_words_the_agent_noted_for_it() -> None:
    tables, _, _ = record({"noting": Noting()}, users="none", days=4)
    rows = [
        (d["day"], d["action"] is None, d["reasoning"]) for d in tables["decisions"].to_pylist()
    ]
    assert rows == [
        (0, True, "day 0: no change: <b>steady</b>"),
        (1, False, "day 1: up"),
        (2, True, "day 2: no change: <b>steady</b>"),
        (3, False, "day 3: up"),
    ]
