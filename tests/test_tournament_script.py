"""scripts/tournament.py run as a user types it, on tiny budgets (real Ray, real MLflow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from arena_rl.eventlog.files import read_log
from arena_rl.eventlog.schema import TABLES
from arena_rl.tournament.runner import running_local_ray

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "tournament.n_tournaments=2",
    "tournament.days=6",
    "population.n_users=900",
    "progress=false",
]

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def tournament(tmp: Path, *args: str, run_dir: str = "run") -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "scripts/tournament.py",
        *args,
        f"tracking.uri=sqlite:///{tmp}/mlflow.db",
    ]
    if "-m" not in args:
        command.append(f"hydra.run.dir={tmp / run_dir}")
    env = {**os.environ, "RAY_DEDUP_LOGS": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def leaderboard(run_dir: Path) -> dict[str, dict]:
    """Leaderboard rows by agent, without decision times (wall-clock, never reproducible)."""
    rows = json.loads((run_dir / "leaderboard.json").read_text())
    return {row["name"]: {k: v for k, v in row.items() if k != "decision_ms"} for row in rows}


def test_two_agents_as_typed_with_a_hyperparameter_override(tmp_path: Path) -> None:
    done = tournament(tmp_path, "+agents=[ucb,random]", "agents.ucb.c=2.5", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    board = leaderboard(tmp_path / "run")
    assert set(board) == {"ucb", "random"}
    assert "ucb" in done.stdout and "random" in done.stdout
    assert len(list((tmp_path / "run" / "tournaments").glob("*.json"))) == 2
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "arena_rl"]
    runs = client.search_runs([experiment.experiment_id])
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert {"ucb", "random", "control_arm"} <= set(children)
    assert children["ucb"].data.params["c"] == "2.5"
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    logs = {f.path for f in client.list_artifacts(parent.info.run_id, "eventlog")}
    assert logs == {"eventlog/00000", "eventlog/00001"}
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "eventlog/00001")}
    assert {f"eventlog/00001/{stem}.parquet" for stem in TABLES} == files


def test_three_agents_and_a_second_copy_of_one_strategy(tmp_path: Path) -> None:
    done = tournament(
        tmp_path, "+agents=[rule,pid,random]", "+agents@agents.pid_tight=pid",
        "agents.pid_tight.setpoint=25", *TINY,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(leaderboard(tmp_path / "run")) == {"rule", "pid", "random", "pid_tight"}


def test_no_agents_says_how_to_choose_and_lists_them(tmp_path: Path) -> None:
    done = tournament(tmp_path, *TINY)
    assert done.returncode == 2
    assert "+agents=[" in done.stderr and "ucb" in done.stderr and "oracle" in done.stderr


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("tournament.format=league", "tournament.format"),
        ("ray.num_workers=-1", "ray.num_workers"),
        ("agents.random.step_pct=oops", "agents.random"),
        ("+agents.random.nope=1", "agents.random"),
    ],
)
def test_invalid_config_fails_before_ray_starts_naming_the_key(
    tmp_path: Path, override: str, key: str
) -> None:
    done = tournament(tmp_path, "+agents=[random]", override, *TINY)
    assert done.returncode != 0
    assert key in done.stderr
    assert not (tmp_path / "run" / "tournaments").exists()


def test_multirun_over_populations(tmp_path: Path) -> None:
    done = tournament(
        tmp_path, "-m", "+agents=[rule,random]", "population=default,casual", *TINY,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    boards = sorted((tmp_path / "sweep").glob("*/leaderboard.json"))
    assert len(boards) == 2


def test_same_results_on_zero_one_or_two_workers_and_resume_adds_nothing(tmp_path: Path) -> None:
    args = ["+agents=[rule,random]", "tournament.n_tournaments=4", "tournament.days=6",
            "population.n_users=900", "progress=false", "tracking.enabled=false"]  # fmt: skip
    zero = tournament(tmp_path, *args, "ray.num_workers=0", run_dir="zero")
    one = tournament(tmp_path, *args, "ray.num_workers=1", run_dir="one")
    two = tournament(tmp_path, *args, "ray.num_workers=2", run_dir="two")
    for done in (zero, one, two):
        assert done.returncode == 0, done.stderr[-2000:]
    assert "Started a local Ray" not in zero.stderr  # in-process: no Ray at all
    assert "ground truth" in zero.stdout and "from the cache" in one.stdout  # searched once
    for i in range(4):
        runs = [
            json.loads((tmp_path / run / "tournaments" / f"{i:05d}.json").read_text())
            for run in ("zero", "one", "two")
        ]
        assert runs[0]["objective"] == runs[1]["objective"] == runs[2]["objective"]
        assert runs[0]["audit"] == runs[1]["audit"] == runs[2]["audit"]
        logs = [read_log(tmp_path / run / "eventlog" / f"{i:05d}") for run in ("zero", "two")]
        assert all(logs[0][s].to_pylist() == logs[1][s].to_pylist() for s in TABLES)
    assert leaderboard(tmp_path / "zero") == leaderboard(tmp_path / "one")
    assert leaderboard(tmp_path / "one") == leaderboard(tmp_path / "two")
    # resume: drop one finished tournament, rerun in the same directory
    (tmp_path / "two" / "tournaments" / "00002.json").unlink()
    again = tournament(tmp_path, *args, "ray.num_workers=2", run_dir="two")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(list((tmp_path / "two" / "tournaments").glob("*.json"))) == 4
    assert leaderboard(tmp_path / "two") == leaderboard(tmp_path / "one")


def test_a_command_joins_the_cluster_ray_start_left_running(tmp_path: Path) -> None:
    """``ray start --head`` once (token auth on, as Ray now defaults; the mode unset, as a
    user's shell has it), then a command attaches to it by itself instead of starting Ray."""
    if running_local_ray() is not None:
        pytest.skip("a cluster started by `ray start --head` already runs on this machine")
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    said = tmp_path / "ray_start.txt"
    with said.open("w") as out:
        head = subprocess.Popen(
            ["ray", "start", "--head", "--num-cpus=2", "--block", "--include-dashboard=false"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while running_local_ray() is None:  # (Ray keeps the address file if it is the same)
            assert time.monotonic() < deadline, (
                f"ray start --head did not come up:\n{said.read_text()}"
            )
            assert head.poll() is None, f"ray start --head exited:\n{said.read_text()}"
            time.sleep(0.5)
        done = subprocess.run(
            [sys.executable, "scripts/tournament.py", "+agents=[rule,random]", *TINY,
             "tracking.enabled=false", f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Started a local Ray" not in done.stderr
        assert "Connecting to existing Ray cluster" in done.stderr
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # --block: stopping it stops the cluster
        head.wait(timeout=60)


@pytest.mark.llm
def test_ucb_and_llm_as_typed_then_a_rerun_makes_no_model_calls(tmp_path: Path) -> None:
    os.environ["ARENA_RL_LLM_CACHE"] = str(tmp_path / "answers.sqlite")  # restored by conftest
    first = tournament(tmp_path, "+agents=[ucb,llm]", *TINY, run_dir="first")
    assert first.returncode == 0, first.stderr[-3000:]
    assert set(leaderboard(tmp_path / "first")) == {"ucb", "llm"}
    assert "Model usage:" in first.stdout and "llm:" in first.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "arena_rl"]
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    llm_run = next(r for r in runs if r.info.run_name == "llm")
    metrics = llm_run.data.metrics
    assert metrics["usage/calls"] > 0 and metrics["usage/prompt_tokens"] > 0
    assert metrics["usage/completion_tokens"] > 0 and metrics["usage/latency_s"] > 0
    assert "usage/cache_hits" in metrics and "usage/latency_s_per_call" in metrics

    again = tournament(tmp_path, "+agents=[ucb,llm]", *TINY, run_dir="again")
    assert again.returncode == 0, again.stderr[-3000:]
    for i in range(2):
        a = json.loads((tmp_path / "first" / "tournaments" / f"{i:05d}.json").read_text())
        b = json.loads((tmp_path / "again" / "tournaments" / f"{i:05d}.json").read_text())
        assert b["usage"]["llm"]["calls"] == 0 and b["usage"]["llm"]["cache_hits"] > 0
        assert a["objective"] == b["objective"] and a["audit"] == b["audit"]
    assert leaderboard(tmp_path / "again") == leaderboard(tmp_path / "first")


def test_pricing_as_typed_is_identical_on_one_and_two_workers(tmp_path: Path) -> None:
    args = ["scenario=pricing", "+agents=[ucb,bayesopt,random,oracle]",
            "tournament.n_tournaments=2", "tournament.days=30", "population.n_users=1000",
            "progress=false"]  # fmt: skip
    one = tournament(tmp_path, *args, "ray.num_workers=1", run_dir="one")
    two = tournament(tmp_path, *args, "ray.num_workers=2", run_dir="two")
    for done in (one, two):
        assert done.returncode == 0, done.stderr[-3000:]
    for i in range(2):
        runs = [
            json.loads((tmp_path / run / "tournaments" / f"{i:05d}.json").read_text())
            for run in ("one", "two")
        ]
        assert runs[0]["objective"] == runs[1]["objective"]
        assert runs[0]["audit"] == runs[1]["audit"]
        assert set(runs[0]["history"]["control_arm"]) >= {"REVENUE_PER_USER", "RETENTION_RATE"}
    assert leaderboard(tmp_path / "one") == leaderboard(tmp_path / "two")
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "arena_rl"]
    runs = client.search_runs([experiment.experiment_id])
    children = {r.info.run_name for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert {"ucb", "bayesopt", "random", "oracle", "control_arm"} <= children


def test_unknown_scenario_and_mismatched_agent_fail_before_work(tmp_path: Path) -> None:
    unknown = tournament(tmp_path, "scenario=nope", "+agents=[random]", *TINY)
    assert unknown.returncode != 0
    assert "scenario/nope" in unknown.stderr and "pricing" in unknown.stderr
    ppo = tournament(tmp_path, "scenario=pricing", "+agents=[ppo]", *TINY)
    assert ppo.returncode == 2
    assert "agents.ppo" in ppo.stderr and "'pricing' scenario" in ppo.stderr
    assert not (tmp_path / "run" / "tournaments").exists()
