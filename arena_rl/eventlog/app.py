"""The replay command: a policy over a finished run's decision points, and what it would earn.

    python scripts/replay.py log=<run folder | log folder | MLflow run id> policy=<agent>

Reads the run's event logs, replays the policy at every decision point in its own process
(:mod:`arena_rl.eventlog.replay`), prints the replay's metrics and the off-policy estimates of
its mean reward per decision (:mod:`arena_rl.eventlog.evaluation`), and logs an MLflow run
tagged with the run it replays.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
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
from arena_rl.eventlog.evaluation import carry_over, off_policy
from arena_rl.eventlog.external import load_external, off_policy_external, replay_external
from arena_rl.eventlog.files import read_log
from arena_rl.eventlog.ope import Estimate
from arena_rl.eventlog.replay import replay
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
        table = read_log(folder, ("decisions", "objects"))  # the rest is not replayed
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


def format_table(
    summary: dict[str, float], estimates: dict[str, Estimate], warnings: Sequence[str] = ()
) -> str:
    lines = [
        f"decision points: {summary['decision_points']:.0f}",
        f"violations: {summary['violations']:.0f} (actions the guardrails, or the manifest, "
        "would not take as asked)",
        f"agreement with the logged actions: {summary['agreement']:.1%}",
        f"policy faults: {summary['faults']:.0f}",
        f"logged policy's mean reward per decision: {summary['logged_mean_reward']:.4f}",
        "",
        f"{'estimator':<8} {'value':>9}  {'95% CI':>21}  {'ESS':>8}",
    ]
    for e in estimates.values():
        lines.append(
            f"{e.name:<8} {e.value:>9.4f}  [{e.ci_low:>9.4f}, {e.ci_high:>9.4f}]  {e.ess:>8.1f}"
        )
    if "carry_over_p" in summary:
        p = summary["carry_over_p"]
        told = f"p = {p:.2g}" if np.isfinite(p) else "cannot tell (the economy never changed)"
        lines.append(
            f"carry-over test (does the economy before a decision move its reward?): {told}"
        )
    found = sorted({e.warning for e in estimates.values() if e.warning}) + list(warnings)
    lines += [f"warning: {w}" for w in found]
    return "\n".join(lines)


def run(cfg: DictConfig) -> int:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    plain: dict[str, Any] = {str(k): v for k, v in container.items()}
    log = str(plain["log"])
    done = replay_manifest(plain) if log.endswith((".yaml", ".yml")) else replay_run(plain)
    print(format_table(done.summary, done.estimates, done.warnings))
    if plain["tracking"]["enabled"]:
        from arena_rl.tournament.tracking import log_replay

        run_id = log_replay(plain, done.replay_of, done.summary, done.table, done.estimates)
        print(f"\nMLflow run {run_id} (tag replay_of={done.replay_of})")
    return 0


@dataclass(frozen=True)
class Replayed:
    """What a replay prints and logs."""

    summary: dict[str, float]
    table: pa.Table
    """One row per decision point: what the policy did there."""
    estimates: dict[str, Estimate]
    replay_of: str
    """The MLflow run, or the file, replayed."""
    warnings: list[str]
    """Besides the estimators' own (the carry-over test's)."""


def replay_run(plain: dict[str, Any]) -> Replayed:
    """An agent of ``conf/agents/`` over one of arena_rl's own logs."""
    if plain["policy"] not in available_agents():
        raise ConfigError(
            f"policy={plain['policy']}: no such agent; one of {', '.join(available_agents())}"
        )
    config = agent_configs([plain["policy"]])[plain["policy"]]
    config |= dict(plain.get("policy_params") or {})
    build_agent(plain["policy"], config)  # a bad hyperparameter fails here, before any work
    loaded = load(str(plain["log"]), plain["tracking"]["uri"], plain.get("tournaments"))
    decisions = loaded.decisions
    print(
        f"replaying {plain['policy']} over {decisions.num_rows} decision points of {loaded.source}"
    )
    with _progress(decisions.num_rows, plain["progress"]) as advance:
        factory = functools.partial(build_agent, plain["policy"], config)
        info = variant_info(plain["policy"], loaded.settings)
        replayed = replay(decisions, factory, info, seed=plain["seed"], progress=advance)
    estimates = off_policy(decisions, replayed, n_boot=plain["n_boot"], seed=plain["seed"])
    lasting = carry_over(decisions)
    summary = {
        "decision_points": len(replayed.decisions),
        "violations": replayed.violations,
        "agreement": replayed.agreement,
        "faults": len(replayed.faults),
        "logged_mean_reward": float(np.mean(decisions["reward"].to_numpy(zero_copy_only=False))),
        "carry_over_p": lasting.p_value,
    }
    warnings = [lasting.warning] if lasting.warning else []
    return Replayed(summary, replayed.table(), estimates, loaded.run_id or loaded.source, warnings)


def replay_manifest(plain: dict[str, Any]) -> Replayed:
    """A choice policy (``policy=module:Class``) over an external log and its manifest."""
    factory = import_policy(str(plain["policy"]))
    log = load_external(plain["log"])
    print(f"replaying {plain['policy']} over {len(log.points)} decision points of {log.source}")
    replayed = replay_external(log, factory)
    estimates = off_policy_external(log, replayed, n_boot=plain["n_boot"], seed=plain["seed"])
    summary = {
        "decision_points": len(log.points),
        "violations": replayed.n_violations,
        "agreement": replayed.agreement,
        "faults": len(replayed.faults),
        "logged_mean_reward": float(np.mean([p["reward"] for p in log.points])),
    }
    table = pa.Table.from_pylist(
        [{"row": p["row"], "case": str(p["case"]), "point": p["point"], "action": a,
          "agrees": ok, "violation": v}
         for p, a, ok, v in zip(log.points, replayed.actions, replayed.agrees,
                                replayed.violations, strict=True)]
    )  # fmt: skip
    return Replayed(summary, table, estimates, str(plain["log"]), [])


def import_policy(name: str) -> Any:
    """``module:Class`` (importable here and in the policy's process) -> the class."""
    module, _, attribute = name.partition(":")
    if not module or not attribute:
        raise ConfigError(f"policy={name}: for an external log, name a class as module:Class")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"policy={name}: cannot import it ({exc})") from None


@contextlib.contextmanager
def _progress(total: int, shown: bool) -> Iterator[Callable[[int, int], None]]:
    bar = tqdm(total=total, unit="decision", disable=not (shown and sys.stderr.isatty()))

    def advance(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    try:
        yield advance
    finally:
        bar.close()


@hydra.main(config_path=str(CONF_DIR), config_name="replay", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        code = run(cfg)
    except (ConfigError, FileNotFoundError, ValueError) as exc:  # ManifestError included
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if code:
        sys.exit(code)
