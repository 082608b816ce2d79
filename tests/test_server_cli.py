"""`python -m arena_rl serve` configuration, the CLI end to end, realtime time, MLflow logging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError
from server_support import serve, wait_until
from tendedloop_agent import Agent, ConfigUpdate
from tendedloop_agent.types import Signals

from arena_rl.server.clock import SimClock
from arena_rl.server.config import ServeConfigError, compose_serve_config, serve_settings

ROOT = Path(__file__).resolve().parent.parent


def test_default_config_binds_localhost_realtime() -> None:
    s = serve_settings(compose_serve_config())
    assert (s.host, s.port, s.time_mode, s.seconds_per_day) == ("127.0.0.1", 7860, "realtime", 60)
    assert s.variants == ("Treatment-1",) and s.control_name == "Control"
    assert s.guardrails.update_interval_days * 1440 == pytest.approx(60)
    assert s.guardrails.delta_limit_pct == 50 and not s.guardrails.auto_reset
    assert s.days == 28 and s.n_users == 2000  # the scenario's horizon, the preset's users


def test_overrides_reach_the_settings(tmp_path: Path) -> None:
    cfg = compose_serve_config(
        ["variants=[greedy,careful]", "time.mode=manual", "population=farmers",
         "population.n_users=600", "guardrails.update_interval_min=5", f"manifest_dir={tmp_path}"]
    )  # fmt: skip
    s = serve_settings(cfg)
    assert s.variants == ("greedy", "careful") and s.time_mode == "manual"
    assert s.population.name == "farmers" and s.n_users == 600
    assert s.guardrails.update_interval_days == pytest.approx(5 / 1440)
    assert s.manifest_dir == tmp_path
    assert serve_settings(compose_serve_config(["variants=3"])).variants[-1] == "Treatment-3"


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("variants=9", "variants"),
        ("variants=[a,a]", "variants"),
        ("time.mode=fast", "time.mode"),
        ("time.seconds_per_day=0", "time.seconds_per_day"),
        ("time.epoch=yesterday", "time.epoch"),
        ("guardrails.delta_limit_pct=500", "guardrails.delta_limit_pct"),
        ("guardrails.update_interval_min=-1", "guardrails.update_interval_min"),
        ("webhooks.max_attempts=0", "webhooks.max_attempts"),
        ("population.n_users=1", "n_users"),
    ],
)
def test_bad_config_names_the_key(override: str, names: str) -> None:
    with pytest.raises(ServeConfigError, match=names.replace(".", r"\.")):
        serve_settings(compose_serve_config([override]))


def test_schema_rejects_wrong_types_and_unknown_keys() -> None:
    with pytest.raises((ConfigCompositionException, ValidationError), match="port"):
        compose_serve_config(["port=abc"])
    with pytest.raises(ConfigCompositionException, match="bogus"):
        compose_serve_config(["bogus=1"])


def test_realtime_clock_runs_and_stops_while_paused() -> None:
    wall = [100.0]
    clock = SimClock("realtime", seconds_per_day=10.0, wall=lambda: wall[0])
    wall[0] += 25.0
    assert clock.now() == pytest.approx(2.5)
    clock.freeze()
    wall[0] += 100.0
    assert clock.now() == pytest.approx(2.5)
    clock.thaw()
    wall[0] += 5.0
    assert clock.now() == pytest.approx(3.0)
    assert clock.iso(3.0) == "2026-01-04T00:00:00Z"
    with pytest.raises(ValueError, match="realtime"):
        clock.advance(1)

    with serve(time_mode="realtime", seconds_per_day=0.1) as served:
        exp = served.runtime.experiment
        wait_until(lambda: exp.population.day >= 3)
        served.admin("pause")
        day = exp.population.day
        time.sleep(0.4)
        assert exp.population.day == day  # no simulated time passes while paused
        refused = served.call("POST", "/api/arena/admin/advance", served.runtime.tokens.admin_token)
        assert refused.status_code == 409  # realtime clocks are not advanced by hand
        served.admin("resume")
        wait_until(lambda: exp.population.day >= day + 2)


def test_served_experiment_logs_to_mlflow(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with (
        serve(tracking_enabled=True, tracking_uri=uri, tracking_out_dir=tmp_path) as served,
        Agent(served.url, served.token("Alpha")) as agent,
    ):
        served.advance(2)
        agent.act(ConfigUpdate({"scanXp": 12}, reasoning="because scans lag"))
        served.advance(2)
        agent.act(ConfigUpdate({"scanXp": 99}, reasoning="push harder"))
        run_id = served.admin("log")["runId"]
    client = MlflowClient(uri)
    parent = client.get_run(run_id)
    assert parent.data.tags["arena_experiment_id"] == served.runtime.experiment.experiment_id
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'"
    )
    assert {c.info.run_name for c in children} == {"Alpha", "Beta", "control_arm"}
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"decisions.json", "audit.parquet", "leaderboard.json"} <= artifacts
    decisions = json.loads(next(tmp_path.rglob("decisions.json")).read_text())
    assert [d["reasoning"] for d in decisions["Alpha"]] == ["because scans lag", "push harder"]
    assert decisions["Alpha"][1]["clampedDeltas"]["scanXp"]["clamped"] is True
    import pyarrow.parquet as pq

    audit = pq.read_table(next(tmp_path.rglob("audit.parquet"))).to_pylist()
    assert {"because scans lag", "push harder"} <= {r["reasoning"] for r in audit}


def _start(tmp_path: Path, *overrides: str, tracking: bool = False) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "arena_rl", "serve", "port=0", "time.mode=manual",
            "population.n_users=300", "variants=2", f"manifest_dir={tmp_path / 'm'}",
            f"hydra.run.dir={tmp_path / 'run'}", f"tracking.enabled={str(tracking).lower()}",
            *overrides]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_cli_serve_writes_manifests_and_serves_the_sdk(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        admin_file = tmp_path / "m" / "admin.json"
        deadline = time.monotonic() + 60
        while not admin_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        manifests = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "m").glob("*.json")}
        assert set(manifests) == {"Control", "Treatment-1", "Treatment-2", "admin"}
        m = manifests["Treatment-2"]
        assert m["apiUrl"].startswith("http://127.0.0.1:") and m["strategyToken"].startswith(
            "strat_"
        )
        with Agent(m["apiUrl"], m["strategyToken"]) as agent:
            info = agent.info()
            assert (info.variant_id, info.experiment_id) == (m["variantId"], m["experimentId"])
        cli = [sys.executable, "-m", "arena_rl", "admin", "advance", "--days", "2",
               "--manifest-dir", str(tmp_path / "m")]  # fmt: skip
        done = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["steppedDays"] == 2
    finally:
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=30)
    assert "arena_rl Arena API on http://127.0.0.1:" in out


def test_cli_serve_refuses_bad_config_before_starting(tmp_path: Path) -> None:
    proc = _start(tmp_path, "guardrails.delta_limit_pct=1")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "guardrails.delta_limit_pct" in err
    assert not (tmp_path / "m").exists()


def _manifests(tmp_path: Path, proc: subprocess.Popen[str]) -> dict[str, dict[str, Any]]:
    """The manifests a CLI server wrote, once it has written them."""
    admin_file = tmp_path / "m" / "admin.json"
    deadline = time.monotonic() + 60
    while not admin_file.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    time.sleep(0.2)  # the files are written one after another
    return {p.stem: json.loads(p.read_text()) for p in (tmp_path / "m").glob("*.json")}


def test_sigterm_logs_to_mlflow_and_a_restart_refuses_the_old_tokens(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    secret = "token_secret=fixed-for-this-test"
    proc = _start(tmp_path, secret, f"tracking.uri={uri}", tracking=True)
    try:
        first = _manifests(tmp_path, proc)
        with Agent(first["Treatment-1"]["apiUrl"], first["Treatment-1"]["strategyToken"]) as a:
            a.act(ConfigUpdate({"scanXp": 12}, reasoning="before the SIGTERM"))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopping (SIGTERM); logging to MLflow" in out and "MLflow run" in out, out + err
    client = MlflowClient(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("arena_rl_served").experiment_id],
        "tags.arena_end = 'shutdown'",
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [r.data.tags["arena_start_id"] for r in parents] == [first["admin"]["startId"]]
    decisions = json.loads(next(tmp_path.rglob("decisions.json")).read_text())
    assert [d["reasoning"] for d in decisions["Treatment-1"]] == ["before the SIGTERM"]

    # the same config and secret again: a new experiment, where the old tokens are refused
    (tmp_path / "m" / "admin.json").unlink()
    proc = _start(tmp_path, secret)
    try:
        second = _manifests(tmp_path, proc)
        assert second["admin"]["startId"] != first["admin"]["startId"]
        assert second["Treatment-1"]["variantId"] == first["Treatment-1"]["variantId"]
        old = Agent(second["Treatment-1"]["apiUrl"], first["Treatment-1"]["strategyToken"])
        with old, pytest.raises(httpx.HTTPStatusError) as refused:
            old.info()
        assert refused.value.response.status_code == 403
        assert "earlier start" in refused.value.response.json()["error"]
        with Agent(second["Treatment-1"]["apiUrl"], second["Treatment-1"]["strategyToken"]) as a:
            assert a.decisions()["total"] == 0  # nothing of the first experiment is left
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_an_agent_running_across_a_restart_stops_instead_of_acting_on_the_new_experiment() -> None:
    acted: list[int] = []
    stopped = threading.Event()

    def decide(signals: Signals, config: dict[str, Any]) -> ConfigUpdate:
        acted.append(signals.experiment_days)
        return ConfigUpdate({"scanXp": config["scanXp"] * 1.01}, reasoning="tick")

    with serve(token_secret="fixed") as first:
        first.advance(1)
        port, token = int(first.url.rsplit(":", 1)[1]), first.token("Alpha")
        agent = Agent(first.url, token, heartbeat_interval=1)

        def run() -> None:
            try:
                agent.run(decide, poll_interval=0.05)
            finally:
                stopped.set()

        threading.Thread(target=run, daemon=True).start()
        wait_until(lambda: len(acted) >= 2)
    # the first server is gone (its experiment with it); the same settings start again
    with serve(bind_port=port, token_secret="fixed") as second:
        assert stopped.wait(20), "the agent kept going on the restarted server"
        log = second.call("GET", "/api/arena/decisions", second.token("Alpha")).json()["data"]
        assert log["total"] == 0  # it never acted on the new experiment
        refused = second.call("GET", "/api/arena/signals", token)
        assert refused.status_code == 403 and refused.json()["error"].startswith(
            "EXPERIMENT_NOT_RUNNING"
        )
    agent.close()
