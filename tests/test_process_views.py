"""Process views of a real recorded log: the directly-follows graph pm4py finds is the one the
events table holds, variants account for every user, and the time to the first streak agrees
with the users' own events."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from agents.ucb import UCB1
from arena_rl.eventlog.files import to_parquet, write_log
from arena_rl.eventlog.process_views import (
    journey_variants,
    require_pm4py,
    write_process_views,
)
from arena_rl.eventlog.recorder import EventLogRecorder
from arena_rl.experiment import run_experiment
from arena_rl.scenarios import load_population, load_scenario

pytest.importorskip("pm4py")  # the process extra

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = load_scenario("default")
    recorder = EventLogRecorder(scenario.user_events, users=120, seed=1, tournament=0)
    run_experiment(
        {"ucb": UCB1()},
        seed=1,
        scenario=scenario,
        population=load_population(scenario),
        n_users=2000,
        days=21,
        subscribers=[recorder],
    )
    return write_log(tmp_path_factory.mktemp("log") / "eventlog", to_parquet(recorder.tables()))


@pytest.fixture(scope="module")
def views(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    written = write_process_views(folder, tmp_path_factory.mktemp("views"))
    return {path.name: path for path in written}


@pytest.fixture(scope="module")
def journeys(folder: Path) -> pd.DataFrame:
    """Each user's events with its arm, straight from the Parquet tables (no code under test)."""
    events = pd.read_parquet(folder / "events.parquet")
    links = pd.read_parquet(folder / "event_objects.parquet")
    objects = pd.read_parquet(folder / "objects.parquet")
    users = objects[objects["ocel_type"] == "user"][["ocel_id", "arm"]]
    rows = links.astype({"ocel_object_id": str}).merge(
        users.rename(columns={"ocel_id": "ocel_object_id"}), on="ocel_object_id"
    )
    rows = rows.merge(
        events[["ocel_id", "ocel_type", "ocel_time"]].astype({"ocel_type": str}),
        left_on="ocel_event_id",
        right_on="ocel_id",
    )
    return rows.sort_values(["ocel_object_id", "ocel_time", "ocel_id"])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_view_is_written(views: dict[str, Path], journeys: pd.DataFrame) -> None:
    arms = sorted(journeys["arm"].unique())
    assert arms == ["control_arm", "ucb"]
    expected = {f"dfg_{arm}.{kind}" for arm in arms for kind in ("png", "csv")}
    expected |= {"variants.csv", "streak_days.csv", "streak_summary.csv", "streak_days.png"}
    assert set(views) == expected
    for path in views.values():
        assert path.stat().st_size > 0
    assert views["streak_days.png"].read_bytes().startswith(b"\x89PNG")


def test_dfg_edges_are_the_users_transitions(
    views: dict[str, Path], journeys: pd.DataFrame
) -> None:
    for arm, rows in journeys.groupby("arm"):
        following = rows.groupby("ocel_object_id")["ocel_type"].shift(-1)
        pairs = pd.DataFrame({"source": rows["ocel_type"], "target": following}).dropna()
        expected = pairs.value_counts().to_dict()
        got = {(r["source"], r["target"]): int(r["count"])
               for r in read_csv(views[f"dfg_{arm}.csv"])}  # fmt: skip
        assert got == expected
        assert got[("user enrolled", "active")] > 0


def test_variants_account_for_every_user(views: dict[str, Path], journeys: pd.DataFrame) -> None:
    rows = read_csv(views["variants.csv"])
    for arm, mine in journeys.groupby("arm"):
        churned = set(mine.loc[mine["ocel_type"] == "churned", "ocel_object_id"])
        counted = {g: sum(int(r["count"]) for r in rows if r["arm"] == arm and r["group"] == g)
                   for g in ("churned", "retained")}  # fmt: skip
        assert counted["churned"] == len(churned) > 0
        assert counted["churned"] + counted["retained"] == mine["ocel_object_id"].nunique()
        for group in ("churned", "retained"):
            shares = [float(r["share"]) for r in rows if r["arm"] == arm and r["group"] == group]
            assert sum(shares) == pytest.approx(1.0)
    churn_variants = [r["variant"] for r in rows if r["group"] == "churned"]
    assert all(v.endswith("churned") for v in churn_variants)
    assert all(v.startswith("user enrolled") for v in churn_variants)


def test_time_to_first_streak(views: dict[str, Path], journeys: pd.DataFrame) -> None:
    summary = {r["arm"]: r for r in read_csv(views["streak_summary.csv"])}
    per_user = {r["user"]: r for r in read_csv(views["streak_days.csv"])}
    for arm, mine in journeys.groupby("arm"):
        row = summary[arm]
        assert int(row["users"]) == mine["ocel_object_id"].nunique()
        enrolled = mine[mine["ocel_type"] == "user enrolled"].groupby("ocel_object_id")
        streak = mine[mine["ocel_type"] == "7-day streak"].groupby("ocel_object_id")
        assert int(row["enrolled"]) == enrolled.ngroups
        assert int(row["reached_streak"]) == streak.ngroups
        assert 0.0 <= float(row["share_reached"]) <= 1.0
        days = (
            streak["ocel_time"].min().dt.floor("D") - enrolled["ocel_time"].min().dt.floor("D")
        ).dt.days.dropna()
        for user, expected in days.items():
            assert int(per_user[user]["days_to_streak"]) == expected >= 0
        assert float(row["median_days"]) == pytest.approx(days.median())


def tiny_journeys(rows: list[tuple[str, str]]) -> pa.Table:
    start = datetime(2026, 1, 1)
    return pa.table(
        {"user": [u for u, _ in rows], "arm": ["a"] * len(rows),
         "activity": [a for _, a in rows],
         "time": [start + timedelta(days=i) for i in range(len(rows))],
         "event": [str(i) for i in range(len(rows))]}
    )  # fmt: skip


def test_a_variant_collapses_repeats() -> None:
    journeys = tiny_journeys(
        [("u1", "user enrolled"), ("u1", "active"), ("u1", "scan"), ("u1", "active"),
         ("u1", "active"), ("u1", "churned"), ("u2", "user enrolled"), ("u2", "active")]
    )  # fmt: skip
    users = pa.array(["u1", "u2", "u3"])
    got = journey_variants(journeys, users, ["user enrolled", "active", "churned"]).to_pylist()
    assert got == [
        {"user": "u1", "variant": "user enrolled > active+ > churned", "group": "churned"},
        {"user": "u2", "variant": "user enrolled > active", "group": "retained"},
        {"user": "u3", "variant": "(no events)", "group": "retained"},
    ]


def test_the_script_writes_beside_the_log(
    folder: Path, views: dict[str, Path], tmp_path: Path
) -> None:
    """scripts/process_views.py as a user types it: into LOG/process_views by default."""
    files = {p.name: p.read_bytes() for p in folder.glob("*.parquet")}
    copy = write_log(tmp_path / "eventlog", files)
    done = subprocess.run(
        [sys.executable, "scripts/process_views.py", str(copy)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [Path(line) for line in done.stdout.split()]
    assert {p.name for p in printed} == set(views)
    assert all(p.parent == copy / "process_views" and p.exists() for p in printed)
    missing = subprocess.run(
        [sys.executable, "scripts/process_views.py", str(tmp_path / "nowhere")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 1 and "no event log folder" in missing.stderr


def test_without_pm4py_the_error_says_what_to_install(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "pm4py", None)  # import pm4py now fails
    with pytest.raises(ImportError, match=r"pip install 'arena_rl\[process\]'"):
        require_pm4py()


@pytest.mark.slow
def test_a_tournament_draws_its_process_views_when_asked(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tournament.py"), "+agents=[ucb,random]",
         "ray.num_workers=0", "tournament.n_tournaments=1", "tournament.days=10",
         "population.n_users=900", "eventlog.process_views=true",
         f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"hydra.run.dir={run}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    views = run / "eventlog" / "00000" / "process_views"
    assert {"dfg_ucb.png", "dfg_random.png", "variants.csv", "streak_days.png"} <= {
        p.name for p in views.iterdir()
    }
    logged = list((tmp_path / "mlruns").rglob("process_views/dfg_ucb.png"))
    assert len(logged) == 1  # an artifact of the MLflow parent run
