"""Replay: a policy asked at every logged decision point, in its own process, sees nothing of
what came after; what it would have done is compared with what was done and with what the
guardrails allowed."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pytest
from mlflow import MlflowClient
from replay_policies import Crashes, Doubles, Raises, Snoop

from agents.pid import PIDController
from agents.random_agent import RandomAgent
from agents.rule import RuleBased
from arena_rl.agent import VariantInfo
from arena_rl.eventlog.recorder import EventLogRecorder
from arena_rl.eventlog.replay import ReplayError, replay
from arena_rl.experiment import run_experiment
from arena_rl.scenarios import load_scenario

DAYS = 12
ROOT = Path(__file__).resolve().parent.parent


def logged(agents: Mapping[str, object], seed: int = 0) -> pa.Table:
    scenario = load_scenario()
    recorder = EventLogRecorder(scenario.user_events, users="none", seed=seed)
    run_experiment(agents, seed=seed, n_users=1500, days=DAYS, subscribers=[recorder])  # type: ignore[arg-type]
    return recorder.tables()["decisions"]


def info() -> VariantInfo:
    return VariantInfo.of("policy", days=DAYS)


@pytest.fixture(scope="module")
def decisions() -> pa.Table:
    return logged({"rule": RuleBased(), "random": RandomAgent()})


def test_the_logging_policy_replayed_agrees_with_itself(decisions: pa.Table) -> None:
    rule = decisions.filter(pa.compute.equal(decisions["agent"], "rule"))
    result = replay(rule, RuleBased, info())
    assert len(result.decisions) == DAYS
    assert result.agreement == 1.0, [d for d in result.decisions if not d.agrees][:2]
    assert result.faults == []


def test_a_policy_that_snoops_finds_nothing_later(decisions: pa.Table) -> None:
    result = replay(decisions, Snoop, info())
    assert len(result.decisions) == 2 * DAYS
    found = [d.reasoning for d in result.decisions if d.action is not None]
    assert found == [], found[:1]
    assert result.faults == []


PROBE_BESIDE_THE_LOG = """
import sys, numpy as np, pyarrow.parquet as pq
from arena_rl.agent import VariantInfo
from arena_rl.eventlog.replay import signals_of
from replay_policies import Snoop
table = pq.read_table(sys.argv[1])
rows = table.to_pylist()  # the whole log, within the probe's reach
metrics = [c[4:-6] for c in table.column_names if c.startswith("obs.") and c.endswith(".value")]
snoop = Snoop()
snoop.reset(VariantInfo.of("policy", days=12), np.random.default_rng(0))
answer = snoop.decide(signals_of(rows[0], metrics), {})
print(answer.reasoning if answer else "nothing")
"""


def test_the_snoop_does_find_the_future_when_it_is_within_reach(
    decisions: pa.Table, tmp_path: Path
) -> None:
    """The same probe, run beside the whole log (in a fresh process, as the replay's is),
    finds it: so the test above can fail."""
    import pyarrow.parquet as pq

    pq.write_table(decisions, tmp_path / "log.parquet")
    done = subprocess.run(
        [sys.executable, "-c", PROBE_BESIDE_THE_LOG, str(tmp_path / "log.parquet")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("LEAK"), done.stdout


def test_faults_and_violations_are_recorded_not_trusted(decisions: pa.Table) -> None:
    raising = replay(decisions, Raises, info())
    assert all(d.action is None for d in raising.decisions)
    assert len(raising.faults) == 2 * DAYS and "policy bug" in raising.faults[0]
    doubling = replay(decisions, Doubles, info())
    assert doubling.violations == 2 * DAYS
    assert all("scanXp" in (d.violation or "") for d in doubling.decisions)
    assert doubling.agreement == 0.0


def test_a_policy_process_that_dies_is_an_error_naming_the_decision_point(
    decisions: pa.Table,
) -> None:
    with pytest.raises(ReplayError, match=r"died at decision point \d+ \(tournament 0, arm 'r"):
        replay(decisions, Crashes, info())


def test_a_stochastic_policy_with_the_same_seed_replays_the_same_draws() -> None:
    table = logged({"pid": PIDController(), "random": RandomAgent()}, seed=4)
    random_rows = table.filter(pa.compute.equal(table["agent"], "random"))
    factory = functools.partial(RandomAgent)
    first = replay(random_rows, factory, info(), seed=11)
    again = replay(random_rows, factory, info(), seed=11)
    assert [d.action for d in first.decisions] == [d.action for d in again.decisions]
    assert all(0 < d.probability <= 1 for d in first.decisions)


@pytest.mark.slow
def test_the_replay_command_on_a_run_folder_and_on_its_mlflow_run(tmp_path: Path) -> None:
    store = f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"
    played = _script(tmp_path, "tournament.py", "+agents=[pid,random]", "ray.num_workers=0",
                     "tournament.n_tournaments=2", "tournament.days=8", "population.n_users=900",
                     store, f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert played.returncode == 0, played.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("arena_rl").experiment_id
    runs = client.search_runs([experiment])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    for log in (str(tmp_path / "run"), parent.info.run_id):
        done = _script(tmp_path, "replay.py", f"log={log}", "policy=pid", store,
                       f"hydra.run.dir={tmp_path / 'replay'}")  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "decision points: 32" in done.stdout  # 2 tournaments x 2 agents x 8 days
        assert "dr " in done.stdout and "agreement with the logged actions" in done.stdout
        assert "carry-over test" in done.stdout
    replays = client.search_runs([experiment], "tags.replay_of != ''")
    assert {r.data.tags["replay_of"] for r in replays} == {
        str(tmp_path / "run"),
        parent.info.run_id,
    }
    # pid replayed on its own decisions agrees with them there
    assert all(r.data.metrics["agreement"] >= 0.5 for r in replays)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["log=/no/such/folder", "policy=pid"], "log=/no/such/folder"),
        (["log=.", "policy=pid"], "no event log there"),
        (["log=.", "policy=nobody"], "policy=nobody: no such agent"),
    ],
)
def test_the_replay_command_refuses_bad_input_naming_it(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = _script(tmp_path, "replay.py", *args, "tracking.enabled=false",
                   f"hydra.run.dir={tmp_path / 'replay'}")  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr


def _script(tmp: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=tmp, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
