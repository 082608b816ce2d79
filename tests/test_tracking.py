"""MLflow tracking: parent and child runs, histories, artifacts and plots, in a real store.

Every test reads back through an ``MlflowClient`` what ``log_tournament_run`` wrote to a real
SQLite store in a temporary directory (or, marked slow, to a real ``mlflow server`` over HTTP).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra.utils
import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run

from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.scenarios.gamification.specs import load_population
from arena_rl.tournament.play import TournamentResult, TournamentSpec, play_tournament
from arena_rl.tournament.plots import leaderboard_plot, mean_history, trajectories_plot
from arena_rl.tournament.ratings import leaderboard, standings_records
from arena_rl.tournament.tracking import TRUNCATED, default_tracking_uri, log_tournament_run

pytestmark = [
    # MLflow 3.17's SQLAlchemy models use the `noload` loader, deprecated in SQLAlchemy 2.1;
    # it is MLflow's to fix and harmless here.
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    ),
]

AGENTS = {
    "rule": {"_target_": "agents.rule.RuleBased"},
    "random": {"_target_": "agents.random_agent.RandomAgent", "step_pct": 10.0},
}
DAYS = 8
N_TOURNAMENTS = 3
ARTIFACTS = {
    "leaderboard.csv",
    "leaderboard.json",
    "leaderboard.png",
    "config.json",
    "tournaments.parquet",
    "audit.parquet",
    "comparisons.parquet",
    "trajectories.png",
}
LONG_NOTE = "x" * 7000  # over MLflow's 6000-character param limit


def _tournament(index: int, days: int = DAYS) -> TournamentResult:
    spec = TournamentSpec(
        index, 100 + index, AGENTS, load_population(), load_scenario(), n_users=1500, days=days
    )
    return play_tournament(
        spec, build=lambda name, cfg: hydra.utils.instantiate(cfg), with_regret=False
    )


def _config(n_tournaments: int, days: int) -> dict[str, Any]:
    return {
        "seed": 7,
        "tournament": {"n_tournaments": n_tournaments, "days": days, "format": "ffa"},
        "agents": AGENTS,
        "note": LONG_NOTE,
    }


def _log(
    root: Path,
    results: list[TournamentResult],
    *,
    experiment: str,
    uri: str | None = None,
    **outcome: str,
) -> str:
    return log_tournament_run(
        tracking_uri=uri,
        experiment=experiment,
        run_name="tiny",
        config=_config(len(results), len(results[0].daily_value[CONTROL_ARM])),
        agent_params=AGENTS,
        results=results,
        standings=standings_records(leaderboard(results, n_resamples=200)),
        tags={"git_commit": "abc123", "root_seed": "7"},
        out_dir=root / "out" / experiment,
        **outcome,
    )


@dataclass(frozen=True)
class Logged:
    root: Path
    client: MlflowClient
    parent: Run
    children: dict[str, Run]
    results: list[TournamentResult]
    standings: list[dict[str, Any]]
    batch_sizes: list[int]
    """Metrics + params + tags of each ``log_batch`` call made while logging."""


def _batch_spy(sizes: list[int]) -> Any:
    """A ``MlflowClient.log_batch`` that records each call's size and passes it through."""
    original = MlflowClient.log_batch

    def log_batch(client: MlflowClient, run_id: str, **kwargs: Any) -> Any:
        sizes.append(sum(len(kwargs.get(k, ())) for k in ("metrics", "params", "tags")))
        return original(client, run_id, **kwargs)

    return log_batch


def _children(client: MlflowClient, parent: Run) -> dict[str, Run]:
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    return {r.info.run_name: r for r in runs}


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    root = tmp_path_factory.mktemp("tracking")
    results = [_tournament(i) for i in range(N_TOURNAMENTS)]
    sizes: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # no tracking URI given: the store is <cwd>/mlflow.db
        mp.setattr(MlflowClient, "log_batch", _batch_spy(sizes))
        parent_id = _log(root, results, experiment="tiny")
    client = MlflowClient(default_tracking_uri(root))
    parent = client.get_run(parent_id)
    return Logged(
        root=root,
        client=client,
        parent=parent,
        children=_children(client, parent),
        results=results,
        standings=standings_records(leaderboard(results, n_resamples=200)),
        batch_sizes=sizes,
    )


def test_default_store_is_sqlite_in_the_working_directory(logged: Logged) -> None:
    assert (logged.root / "mlflow.db").is_file()
    assert default_tracking_uri(logged.root) == f"sqlite:///{logged.root / 'mlflow.db'}"
    artifact_uri = logged.parent.info.artifact_uri
    assert artifact_uri is not None
    assert artifact_uri.startswith(str(logged.root / "mlruns"))


def test_parent_run_holds_config_tags_and_leaderboard(logged: Logged) -> None:
    run = logged.parent
    assert run.info.run_name == "tiny"
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["seed"] == "7"
    assert params["tournament.days"] == str(DAYS)
    assert params["tournament.format"] == "ffa"
    assert params["agents.random._target_"] == "agents.random_agent.RandomAgent"
    assert params["agents.random.step_pct"] == "10.0"
    assert params["note"].endswith(TRUNCATED)
    assert len(params["note"]) <= 6000
    tags = run.data.tags
    assert tags["git_commit"] == "abc123"
    assert tags["root_seed"] == "7"
    assert tags["mlflow.source.git.commit"] == "abc123"
    metrics = run.data.metrics
    assert 0.0 < metrics["timing/tracking_s"] < 120.0  # what logging cost, in the run itself
    for record in logged.standings:
        for field in ("objective", "lift", "lift_lo", "lift_hi", "win_rate", "p_best", "rank"):
            assert metrics[f"leaderboard/{record['name']}/{field}"] == pytest.approx(record[field])
    control = np.mean([r.objective[CONTROL_ARM] for r in logged.results])
    assert metrics[f"leaderboard/{CONTROL_ARM}/objective"] == pytest.approx(control)
    assert metrics["tournaments"] == N_TOURNAMENTS


def test_one_child_run_per_agent_and_one_for_control(logged: Logged) -> None:
    assert set(logged.children) == {*AGENTS, CONTROL_ARM}
    for run in logged.children.values():
        assert run.data.tags["mlflow.parentRunId"] == logged.parent.info.run_id
        assert run.data.tags["git_commit"] == "abc123"
        assert run.info.status == "FINISHED"


def test_child_runs_carry_hyperparameters_and_standing(logged: Logged) -> None:
    random = logged.children["random"].data
    assert random.params == {
        "_target_": "agents.random_agent.RandomAgent",
        "step_pct": "10.0",
    }
    assert logged.children["rule"].data.params == {"_target_": "agents.rule.RuleBased"}
    record = next(r for r in logged.standings if r["name"] == "random")
    for field in ("objective", "objective_lo", "objective_hi", "lift", "win_rate"):
        assert random.metrics[field] == pytest.approx(record[field])
    for field in ("rating_mu", "rating_sigma", "p_best", "mean_rank", "n"):
        assert random.metrics[field] == pytest.approx(record[field])
    control = logged.children[CONTROL_ARM].data
    assert control.params == {}
    assert control.metrics["n"] == N_TOURNAMENTS


@pytest.mark.parametrize("arm", [*AGENTS, CONTROL_ARM])
def test_children_have_daily_histories_with_step_equal_to_day(logged: Logged, arm: str) -> None:
    run_id = logged.children[arm].info.run_id
    for metric in METRICS:
        history = logged.client.get_metric_history(run_id, f"history/{metric}")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(DAYS))
    history = sorted(
        logged.client.get_metric_history(run_id, "history/RETENTION_RATE"), key=lambda m: m.step
    )
    expected = np.mean([r.history[arm]["RETENTION_RATE"] for r in logged.results], axis=0)
    np.testing.assert_allclose([m.value for m in history], expected)
    objective = logged.client.get_metric_history(run_id, "history/objective")
    assert len(objective) == DAYS


def test_agent_child_shows_control_history_alongside(logged: Logged) -> None:
    run_id = logged.children["rule"].info.run_id
    history = sorted(
        logged.client.get_metric_history(run_id, "history/control/objective"), key=lambda m: m.step
    )
    expected = np.mean([r.daily_value[CONTROL_ARM] for r in logged.results], axis=0)
    np.testing.assert_allclose([m.value for m in history], expected)
    assert [m.step for m in history] == list(range(DAYS))


def test_parent_artifacts_are_listed_and_readable(logged: Logged) -> None:
    run_id = logged.parent.info.run_id
    names = {Path(a.path).name for a in logged.client.list_artifacts(run_id)}
    assert names == ARTIFACTS
    local = Path(logged.client.download_artifacts(run_id, "", str(logged.root / "dl")))

    tournaments = pq.read_table(local / "tournaments.parquet").to_pylist()
    assert len(tournaments) == N_TOURNAMENTS * len(AGENTS)
    assert {(row["tournament"], row["agent"]) for row in tournaments} == {
        (i, a) for i in range(N_TOURNAMENTS) for a in AGENTS
    }
    first = next(row for row in tournaments if row["tournament"] == 0 and row["agent"] == "rule")
    result = logged.results[0]
    assert first["seed"] == result.seed
    assert first["objective"] == pytest.approx(result.objective["rule"])
    assert first["lift"] == pytest.approx(result.lift["rule"])
    assert first["guardrail_accepted"] == result.guardrails["rule"]["accepted"]
    assert first["faults"] == 0
    assert first["decision_ms"] == pytest.approx(result.decision_ms["rule"])

    audit = pq.read_table(local / "audit.parquet")
    assert audit.num_rows == sum(len(r.audit) for r in logged.results) > 0
    assert set(audit.column("tournament").to_pylist()) == set(range(N_TOURNAMENTS))
    comparisons = pq.read_table(local / "comparisons.parquet")
    assert comparisons.num_rows == sum(len(r.comparisons) for r in logged.results)

    board = json.loads((local / "leaderboard.json").read_text())
    assert [r["name"] for r in board] == [r["name"] for r in logged.standings]
    assert (local / "leaderboard.csv").read_text().splitlines()[0].startswith("rank,name,")
    assert json.loads((local / "config.json").read_text())["note"] == LONG_NOTE
    for png in ("leaderboard.png", "trajectories.png"):
        assert (local / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_logging_is_one_batch_per_run(logged: Logged) -> None:
    assert len(logged.batch_sizes) == 2 + len(AGENTS)  # parent, agents, control
    assert all(0 < size <= 1000 for size in logged.batch_sizes)


def test_long_histories_are_split_into_batches_and_all_arrive(logged: Logged) -> None:
    days = 80  # 7 series x 80 days x (agent + control) = 1120 history points per agent run
    results = [_tournament(0, days=days)]
    sizes: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, "log_batch", _batch_spy(sizes))
        parent_id = _log(
            logged.root, results, experiment="long", uri=default_tracking_uri(logged.root)
        )
    assert max(sizes) <= 1000
    assert len(sizes) > 2 + len(AGENTS)
    children = _children(logged.client, logged.client.get_run(parent_id))
    for metric in ("history/objective", "history/control/RETENTION_RATE"):
        history = logged.client.get_metric_history(children["rule"].info.run_id, metric)
        assert sorted(m.step for m in history) == list(range(days))


def test_a_failure_marks_the_runs_failed_and_propagates(logged: Logged) -> None:
    uri = default_tracking_uri(logged.root)
    original = MlflowClient.log_batch

    def fail_second(client: MlflowClient, run_id: str, **kwargs: Any) -> Any:
        if calls:
            raise RuntimeError("store went away")
        calls.append(run_id)
        return original(client, run_id, **kwargs)

    calls: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowClient, "log_batch", fail_second)
        with pytest.raises(RuntimeError, match="store went away"):
            _log(logged.root, logged.results, experiment="broken", uri=uri)
    experiment = logged.client.get_experiment_by_name("broken")
    assert experiment is not None
    runs = logged.client.search_runs([experiment.experiment_id])
    assert runs
    assert {r.info.status for r in runs} == {"FAILED"}


def test_the_experiment_opens_on_its_runs_with_artifacts_beside_the_store(
    logged: Logged,
) -> None:
    experiment = logged.client.get_experiment(logged.parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.artifact_location == str(logged.root / "mlruns")


def test_a_rerun_in_the_same_directory_continues_its_parent_run(logged: Logged) -> None:
    uri = default_tracking_uri(logged.root)
    first = _log(logged.root, logged.results[:2], experiment="resumed", uri=uri,
                 status="KILLED", reason="interrupted after 2 of 3 tournaments")  # fmt: skip
    before = _children(logged.client, logged.client.get_run(first))
    again = _log(logged.root, logged.results, experiment="resumed", uri=uri)
    assert again == first
    parent = logged.client.get_run(again)
    assert parent.info.status == "FINISHED" and parent.data.tags["status_reason"] == ""
    after = _children(logged.client, parent)
    assert {n: r.info.run_id for n, r in after.items()} == {
        n: r.info.run_id for n, r in before.items()
    }
    experiment = logged.client.get_experiment_by_name("resumed")
    assert experiment is not None
    assert len(logged.client.search_runs([experiment.experiment_id])) == 1 + len(after)


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_a_run_that_did_not_finish_says_so_and_why(logged: Logged, status: str) -> None:
    uri = default_tracking_uri(logged.root)
    why = f"{status.lower()}: 1 of 3 tournaments failed"
    parent_id = _log(logged.root, logged.results[:1], experiment=f"ended_{status}", uri=uri,
                     status=status, reason=why)  # fmt: skip
    parent = logged.client.get_run(parent_id)
    runs = [parent, *_children(logged.client, parent).values()]
    assert {r.info.status for r in runs} == {status}
    assert {r.data.tags["status_reason"] for r in runs} == {why}


def test_a_run_with_no_finished_tournament_is_logged_as_failed(logged: Logged) -> None:
    parent_id = log_tournament_run(
        tracking_uri=default_tracking_uri(logged.root), experiment="nothing", run_name="none",
        config=_config(3, DAYS), agent_params=AGENTS, results=[], standings=[], tags={},
        out_dir=logged.root / "out" / "nothing", status="FAILED",
        reason="3 of 3 tournaments failed",
    )  # fmt: skip
    parent = logged.client.get_run(parent_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["status_reason"] == "3 of 3 tournaments failed"


def test_mean_history_averages_ragged_tournaments(logged: Logged) -> None:
    full, short = logged.results[0], logged.results[1]
    cut = {arm: {m: v[:3] for m, v in h.items()} for arm, h in short.history.items()}
    short = dataclasses.replace(short, history=cut)
    means = mean_history([full, short], "rule")["RETENTION_RATE"]
    assert means.shape == (DAYS,)
    both = (
        np.array(full.history["rule"]["RETENTION_RATE"][:3]) + cut["rule"]["RETENTION_RATE"]
    ) / 2
    np.testing.assert_allclose(means[:3], both)
    np.testing.assert_allclose(means[3:], full.history["rule"]["RETENTION_RATE"][3:])


def test_leaderboard_plot_shows_each_agent_in_rank_order(logged: Logged) -> None:
    fig = leaderboard_plot(logged.standings)
    assert len(fig.axes) == 2  # objective and lift
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [r["name"] for r in logged.standings]
    assert [ax.get_xlabel() for ax in fig.axes] == [
        "objective (mean, 95% CI)",
        "lift (mean, 95% CI)",
    ]
    with pytest.raises(ValueError, match="no standings"):
        leaderboard_plot([])


def test_trajectories_plot_has_a_panel_per_metric_plus_objective(logged: Logged) -> None:
    fig = trajectories_plot(logged.results)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [*METRICS, "objective"]
    for ax in panels:
        assert {line.get_label() for line in ax.get_lines()} == {CONTROL_ARM, *AGENTS}
    with pytest.raises(ValueError, match="no tournament results"):
        trajectories_plot([])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {url} not healthy after {timeout} s")


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` on a free localhost port; always stopped afterwards."""
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'm.db'}",
        "--default-artifact-root",
        str(tmp_path / "art"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with (tmp_path / "server.log").open("wb") as log:
        # its own process group: the server's worker processes stop with it
        server = subprocess.Popen(
            command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, timeout=90)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.slow
def test_logs_to_a_real_mlflow_server_over_http(
    mlflow_server: str, tmp_path: Path, logged: Logged
) -> None:
    parent_id = _log(tmp_path, logged.results, experiment="remote", uri=mlflow_server)
    client = MlflowClient(mlflow_server)
    parent = client.get_run(parent_id)
    assert parent.data.params["tournament.days"] == str(DAYS)
    assert parent.data.tags["root_seed"] == "7"
    children = _children(client, parent)
    assert set(children) == {*AGENTS, CONTROL_ARM}
    history = client.get_metric_history(children["rule"].info.run_id, "history/RETENTION_RATE")
    assert sorted(m.step for m in history) == list(range(DAYS))
    names = {Path(a.path).name for a in client.list_artifacts(parent_id)}
    assert names == ARTIFACTS
