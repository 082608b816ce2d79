"""OCEL 2.0 export: the files follow the standard's schema, and pm4py's own OCEL 2.0 readers
read back every event, object and link of a real recorded log; writing is all or nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from agents.thompson import ThompsonSampling
from agents.ucb import UCB1
from arena_rl.eventlog import ocel
from arena_rl.eventlog import schema as s
from arena_rl.eventlog.files import to_parquet, write_log
from arena_rl.eventlog.ocel import type_table_names, write_ocel_json, write_ocel_sqlite
from arena_rl.eventlog.recorder import EventLogRecorder
from arena_rl.experiment import run_experiment
from arena_rl.scenarios import load_population, load_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pm4py() -> ModuleType:
    """pm4py comes with the ``process`` extra; without it the read-back tests are skipped."""
    return pytest.importorskip("pm4py")


@pytest.fixture(scope="module")
def log() -> dict[str, pa.Table]:
    scenario = load_scenario("default")
    recorder = EventLogRecorder(
        scenario.user_events, users=100, seed=0, tournament=0, settings={"seed": 0}
    )
    run_experiment(
        {"ucb": UCB1(), "thompson": ThompsonSampling()},
        seed=0,
        scenario=scenario,
        population=load_population(scenario),
        n_users=2000,
        days=21,
        subscribers=[recorder],
    )
    return recorder.tables()


@pytest.fixture(scope="module")
def exported(log: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ocel")
    write_ocel_sqlite(log, folder / "log.sqlite")
    write_ocel_json(log, folder / "log.json")
    return folder


def texts(column: pa.ChunkedArray) -> list[str]:
    return [str(v) for v in ocel.as_text(column).to_pylist()]


def mentioned(log: dict[str, pa.Table]) -> tuple[set[str], pa.Table]:
    """The objects some event refers to, and the object-object links between two of them:
    pm4py's readers keep only these (they drop an object no event mentions, such as the
    tournament, and its links)."""
    objects = set(texts(log["event_objects"]["ocel_object_id"]))
    o2o = log["object_objects"]
    value_set = pa.array(sorted(objects))
    both = pc.and_(
        pc.is_in(o2o["ocel_source_id"], value_set), pc.is_in(o2o["ocel_target_id"], value_set)
    )
    return objects, o2o.filter(both)


def test_sqlite_follows_the_standard_schema(
    pm4py: Any, log: dict[str, pa.Table], exported: Path
) -> None:
    """pm4py's check of the standard's relational constraints (tables, columns, keys)."""
    from pm4py.objects.ocel.validation import ocel20_rel_validation

    satisfied, unsatisfied = ocel20_rel_validation.apply(str(exported / "log.sqlite"))
    assert unsatisfied == [] and len(satisfied) == 24
    with sqlite3.connect(exported / "log.sqlite") as db:
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        count = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in
                 ("event", "object", "event_object", "object_object")}  # fmt: skip
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        scan = [r[1] for r in db.execute('PRAGMA table_info("event_Scan")')]
        enrolled = [r[1] for r in db.execute('PRAGMA table_info("event_UserEnrolled")')]
        users = [r[1] for r in db.execute('PRAGMA table_info("object_User")')]
    assert count == {
        "event": log["events"].num_rows,
        "object": log["objects"].num_rows,
        "event_object": log["event_objects"].num_rows,
        "object_object": log["object_objects"].num_rows,
    }
    assert {"event_UpdateRequested", "event_7DayStreak", "object_EconomyVersion"} <= tables
    assert scan == ["ocel_id", "ocel_time", "day", "arm", "value"]  # the attributes it uses
    assert enrolled == ["ocel_id", "ocel_time", "day", "arm"]
    assert users == ["ocel_id", "ocel_time", "ocel_changed_field", "arm", "day"]


def test_json_holds_every_event_object_and_link(log: dict[str, pa.Table], exported: Path) -> None:
    document = json.loads((exported / "log.json").read_text(encoding="utf-8"))
    assert len(document["events"]) == log["events"].num_rows
    assert len(document["objects"]) == log["objects"].num_rows
    links = sum(len(e["relationships"]) for e in document["events"])
    assert links == log["event_objects"].num_rows
    assert (
        sum(len(o["relationships"]) for o in document["objects"]) == log["object_objects"].num_rows
    )
    declared = {t["name"]: {a["name"]: a["type"] for a in t["attributes"]}
                for t in document["eventTypes"]}  # fmt: skip
    assert declared["scan"] == {"day": "integer", "arm": "string", "value": "float"}
    assert declared["user enrolled"] == {"day": "integer", "arm": "string"}  # no null columns


@pytest.mark.parametrize("form", ["sqlite", "json"])
def test_pm4py_reads_back_the_log(
    pm4py: Any, log: dict[str, pa.Table], exported: Path, form: str
) -> None:
    read = pm4py.read_ocel2_sqlite if form == "sqlite" else pm4py.read_ocel2_json
    back = read(str(exported / f"log.{form}"))
    objects, o2o = mentioned(log)
    assert len(back.events) == log["events"].num_rows
    assert len(back.relations) == log["event_objects"].num_rows
    assert len(back.objects) == len(objects)
    assert len(back.o2o) == o2o.num_rows
    assert Counter(back.events["ocel:activity"]) == Counter(texts(log["events"]["ocel_type"]))
    kinds = dict(zip(texts(log["objects"]["ocel_id"]), texts(log["objects"]["ocel_type"]),
                     strict=True))  # fmt: skip
    assert Counter(back.objects["ocel:type"]) == Counter(kinds[o] for o in objects)
    assert Counter(back.o2o["ocel:qualifier"]) == Counter(texts(o2o["ocel_qualifier"]))


@pytest.mark.parametrize("form", ["sqlite", "json"])
def test_pm4py_reads_an_event_as_recorded(
    pm4py: Any, log: dict[str, pa.Table], exported: Path, form: str
) -> None:
    """A user's 7-day streak and an agent's update request: time (UTC), attributes and
    qualifiers as in the Parquet tables."""
    read = pm4py.read_ocel2_sqlite if form == "sqlite" else pm4py.read_ocel2_json
    back = read(str(exported / f"log.{form}"))
    events, checked = log["events"], 0
    for kind in (s.BREAKER_TRIPPED, "7-day streak", s.UPDATE_REQUESTED, "scan"):
        rows = events.filter(pc.equal(ocel.as_text(events["ocel_type"]), kind))
        if rows.num_rows == 0:
            continue
        checked += 1
        row = rows.slice(rows.num_rows // 2, 1).to_pylist()[0]
        event_id = str(row["ocel_id"])
        got = back.events[back.events["ocel:eid"] == event_id].iloc[0]
        assert got["ocel:activity"] == kind
        assert got["ocel:timestamp"] == pd.Timestamp(row["ocel_time"], tz="UTC")
        assert got["day"] == row["day"] and got["arm"] == row["arm"]
        if row["value"] is not None:
            assert got["value"] == row["value"]
        links = log["event_objects"].filter(
            pc.equal(ocel.as_text(log["event_objects"]["ocel_event_id"]), event_id)
        )
        expected = set(zip(texts(links["ocel_object_id"]), texts(links["ocel_qualifier"]),
                           strict=True))  # fmt: skip
        relations = back.relations[back.relations["ocel:eid"] == event_id]
        assert set(zip(relations["ocel:oid"], relations["ocel:qualifier"], strict=True)) == expected
    assert checked >= 3
    user = back.objects[back.objects["ocel:type"] == s.USER].iloc[0]
    assert user["ocel:oid"].startswith(f"user/{user['arm']}/")


def tiny_log(detail: str) -> dict[str, pa.Table]:
    """Two events, two objects, with awkward text in an attribute."""
    events = pa.table(
        {"ocel_id": [0, 1], "ocel_type": ["update requested", "scan"],
         "ocel_time": [datetime(2026, 1, 1), datetime(2026, 1, 2, 12, 0, 0, 500)],
         "day": [0, 1], "arm": ["a", "a"], "value": [None, 3.0], "code": [None, None],
         "detail": [detail, None]},
        schema=s.EVENTS,
    )  # fmt: skip
    objects = pa.table(
        {"ocel_id": ["arm/a", "user/a/0"], "ocel_type": ["arm", "user"], "arm": ["a", "a"],
         "day": [0, 0], "detail": [detail, None]},
        schema=s.OBJECTS,
    )  # fmt: skip
    e2o = pa.table({"ocel_event_id": [0, 1], "ocel_object_id": ["arm/a", "user/a/0"],
                    "ocel_qualifier": ["of", "user"]}, schema=s.EVENT_OBJECTS)  # fmt: skip
    o2o = pa.table({"ocel_source_id": ["user/a/0"], "ocel_target_id": ["arm/a"],
                    "ocel_qualifier": ["assigned to"]}, schema=s.OBJECT_OBJECTS)  # fmt: skip
    return {"events": events, "objects": objects, "event_objects": e2o, "object_objects": o2o}


def test_text_and_times_survive_both_formats(tmp_path: Path) -> None:
    awkward = 'quote " backslash \\ newline \n tab \t bell \x07 ünïcode ✓ {"json": [1]}'
    tables = tiny_log(awkward)
    write_ocel_json(tables, tmp_path / "t.json")
    document = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    first = document["events"][0]
    assert first["attributes"][-1] == {"name": "detail", "value": awkward}
    assert first["time"] == "2026-01-01T00:00:00.000000Z"  # one time has a fraction: all do
    assert document["events"][1]["time"] == "2026-01-02T12:00:00.000500Z"
    assert document["objects"][0]["attributes"][-1]["value"] == awkward
    write_ocel_sqlite(tables, tmp_path / "t.sqlite")
    with sqlite3.connect(tmp_path / "t.sqlite") as db:
        assert db.execute('SELECT detail FROM "event_UpdateRequested"').fetchone() == (awkward,)
        assert db.execute("SELECT ocel_time FROM event_Scan").fetchone() == (
            "2026-01-02 12:00:00.000500",
        )


def test_type_table_names_are_safe_and_distinct() -> None:
    names = type_table_names(["update requested", "7-day streak", "XP awarded", "a b", "A-B"])
    assert names == {
        "update requested": "UpdateRequested",
        "7-day streak": "7DayStreak",
        "XP awarded": "XPAwarded",
        "a b": "AB",
        "A-B": "AB_2",  # table names ignore case: each must differ
    }
    assert type_table_names(["!"]) == {"!": "Type"}


def test_a_log_folder_exports_like_its_tables(log: dict[str, pa.Table], tmp_path: Path) -> None:
    folder = write_log(tmp_path / "log", to_parquet(log))
    write_ocel_json(folder, tmp_path / "from_folder.json")
    write_ocel_json(log, tmp_path / "from_tables.json")
    assert (tmp_path / "from_folder.json").read_bytes() == (
        tmp_path / "from_tables.json"
    ).read_bytes()


def test_a_folder_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    tables = tiny_log("x")
    for write, name in ((write_ocel_sqlite, "t.sqlite"), (write_ocel_json, "t.json")):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            write(tables, tmp_path / "missing" / name)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_the_old_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = tiny_log("x")
    doubled = pa.concat_tables([tables["event_objects"]] * 2)  # breaks the primary key
    (tmp_path / "t.sqlite").write_text("the previous export")
    with pytest.raises(sqlite3.IntegrityError):
        write_ocel_sqlite(tables | {"event_objects": doubled}, tmp_path / "t.sqlite")
    with monkeypatch.context() as patch:
        patch.setattr(ocel, "_event_lines", lambda *_: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            write_ocel_json(tables, tmp_path / "t.json")
    assert [p.name for p in tmp_path.iterdir()] == ["t.sqlite"]
    assert (tmp_path / "t.sqlite").read_text() == "the previous export"


def test_the_export_never_imports_pm4py(tmp_path: Path) -> None:
    """pm4py is AGPL and optional: exporting a log folder works, and stays clear of it,
    without it."""
    decisions = pa.table({n: [] for n in s.DECISIONS.names}, schema=s.DECISIONS)
    folder = write_log(tmp_path / "log", to_parquet(tiny_log("x") | {"decisions": decisions}))
    code = (
        "import sys; sys.modules['pm4py'] = None\n"  # any import of pm4py would now fail
        "from arena_rl.eventlog.ocel import write_ocel_json, write_ocel_sqlite\n"
        f"write_ocel_sqlite({str(folder)!r}, {str(tmp_path / 't.sqlite')!r})\n"
        f"write_ocel_json({str(folder)!r}, {str(tmp_path / 't.json')!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "t.sqlite").exists() and (tmp_path / "t.json").exists()
