"""The replay command: a policy over a finished run's decision points, and what it would earn.

    python scripts/replay.py log=<run folder | log folder | MLflow run id> policy=<agent>

Reads the run's event logs, replays the policy at every decision point in its own process
(:mod:`arena_rl.eventlog.replay`), prints the replay's metrics and the off-policy estimates of
its mean reward per decision (:mod:`arena_rl.eventlog.evaluation`), and logs an MLflow run
tagged with the run it replays.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from arena_rl.agent import VariantInfo
from arena_rl.config import ConfigError, agent_configs, available_agents, build_agent
from arena_rl.eventlog.evaluation import off_policy
from arena_rl.eventlog.files import read_log
from arena_rl.eventlog.ope import Estimate
from arena_rl.eventlog.replay import ReplayResult, replay
from arena_rl.eventlog.schema import TOURNAMENT
from arena_rl.scenarios import load_population, load_scenario
from arena_rl.scenarios.specs import CONF_DIR

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class LoadedLog:
    """The decision points of one or more tournaments, and what they were played on."""

    decisions: pa.Table
    source: str
    run_id: str | None
    settings: dict[str, Any]
    """The first tournament's settings (scenario, population, days, ...)."""


def log_folders(log: str, tracking_uri: str | None) -> tuple[list[Path], str | None]:
    """The tournament log folders ``log`` names, and the MLflow run id when it is one."""
    path = Path(log)
    if (path / "decisions.parquet").exists():
        return [path], None
    if (path / "eventlog").is_dir():
        folders = sorted(
            p for p in (path / "eventlog").iterdir() if p.is_dir() and not p.name.endswith(".tmp")
        )
        if folders:
            return folders, None
    if path.exists():
        raise ConfigError(
            f"log={log}: no event log there (expected a tournament's log folder with "
            "decisions.parquet, or a run folder with eventlog/)"
        )
    if RUN_ID.match(log):
        from mlflow import MlflowClient

        from arena_rl.tournament.tracking import default_tracking_uri

        client = MlflowClient(tracking_uri or default_tracking_uri())
        target = Path(tempfile.mkdtemp(prefix="arena-replay-log-"))
        try:
            local = Path(client.download_artifacts(log, "eventlog", str(target)))
        except Exception as exc:
            raise ConfigError(f"log={log}: MLflow run has no eventlog/ artifacts: {exc}") from None
        return sorted(p for p in local.iterdir() if p.is_dir()), log
    raise ConfigError(f"log={log}: neither a folder nor an MLflow run id")


def load(log: str, tracking_uri: str | None, tournaments: Sequence[int] | None) -> LoadedLog:
    folders, run_id = log_folders(log, tracking_uri)
    tables: list[pa.Table] = []
    settings: dict[str, Any] = {}
    for folder in folders:
        table = read_log(folder)
        decisions = table["decisions"]
        if (
            tournaments is not None
            and decisions.num_rows
            and decisions["tournament"][0].as_py() not in tournaments
        ):
            continue
        tables.append(decisions)
        if not settings:
            objects = table["objects"]
            root = objects.filter(pc.equal(objects["ocel_type"], TOURNAMENT))
            settings = json.loads(root["detail"][0].as_py() or "{}")
    if not tables:
        raise ConfigError(f"log={log}: no tournament's decision points to replay")
    return LoadedLog(pa.concat_tables(tables, promote_options="default"), log, run_id, settings)


def variant_info(policy: str, settings: dict[str, Any]) -> VariantInfo:
    """What the policy is told at reset: the logged tournament's scenario, population and days
    (a population drawn from a prior is not a named preset: the scenario's default stands in)."""
    scenario = load_scenario(settings.get("scenario", "default"))
    try:
        population = load_population(scenario, settings.get("population") or None)
    except (FileNotFoundError, ValueError):
        population = load_population(scenario)
    return VariantInfo.of(policy, population, scenario, days=settings.get("days"))


def format_table(replayed: ReplayResult, estimates: dict[str, Estimate], logged: float) -> str:
    lines = [
        f"decision points: {len(replayed.decisions)}",
        f"violations: {replayed.violations} (actions the guardrails would refuse or clamp)",
        f"agreement with the logged actions: {replayed.agreement:.1%}",
        f"policy faults: {len(replayed.faults)}",
        f"logged policy's mean reward per decision: {logged:.4f}",
        "",
        f"{'estimator':<8} {'value':>9}  {'95% CI':>21}  {'ESS':>8}",
    ]
    for e in estimates.values():
        lines.append(
            f"{e.name:<8} {e.value:>9.4f}  [{e.ci_low:>9.4f}, {e.ci_high:>9.4f}]  {e.ess:>8.1f}"
        )
    warnings = sorted({e.warning for e in estimates.values() if e.warning})
    lines += [f"warning: {w}" for w in warnings]
    return "\n".join(lines)


def run(cfg: DictConfig) -> int:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    plain: dict[str, Any] = {str(k): v for k, v in container.items()}
    if plain["policy"] not in available_agents():
        raise ConfigError(
            f"policy={plain['policy']}: no such agent; one of {', '.join(available_agents())}"
        )
    config = agent_configs([plain["policy"]])[plain["policy"]] | dict(
        plain.get("policy_params") or {}
    )
    build_agent(plain["policy"], config)  # a bad hyperparameter fails here, before any work
    tournaments = plain.get("tournaments")
    loaded = load(str(plain["log"]), plain["tracking"]["uri"], tournaments)
    decisions = loaded.decisions
    print(
        f"replaying {plain['policy']} over {decisions.num_rows} decision points of {loaded.source}"
    )
    bar = tqdm(
        total=decisions.num_rows, unit="decision",
        disable=not (plain["progress"] and sys.stderr.isatty()),
    )  # fmt: skip

    def advance(done: int, total: int) -> None:
        bar.update(done - bar.n)

    factory = functools.partial(build_agent, plain["policy"], config)
    replayed = replay(decisions, factory, variant_info(plain["policy"], loaded.settings),
                      seed=plain["seed"], progress=advance)  # fmt: skip
    bar.close()
    estimates = off_policy(decisions, replayed, n_boot=plain["n_boot"], seed=plain["seed"])
    logged = float(np.mean(decisions["reward"].to_numpy(zero_copy_only=False)))
    print(format_table(replayed, estimates, logged))
    if plain["tracking"]["enabled"]:
        from arena_rl.tournament.tracking import log_replay

        run_id = log_replay(plain, loaded.run_id or loaded.source, replayed, estimates, logged)
        print(f"\nMLflow run {run_id} (tag replay_of={loaded.run_id or loaded.source})")
    return 0


@hydra.main(config_path=str(CONF_DIR), config_name="replay", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        code = run(cfg)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if code:
        sys.exit(code)
