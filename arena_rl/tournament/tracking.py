"""Log one tournament invocation to MLflow: a parent run, one child run per agent and control.

Only the driver talks to MLflow, through an ``MlflowClient`` with explicit run ids: the fluent
active run is thread-local, and Ray workers inherit neither it nor the tracking URI. Each run's
params, metrics and tags go in a few ``log_batch`` calls (one ``log_metric`` costs ~8 ms on SQLite,
a batch of 1000 ~0.1 s), and per-step detail goes to Parquet artifacts, not metric rows.

Layout (what the MLflow UI shows):
    parent run ``run_name``: params = the resolved config (nested keys joined by dots); tags =
        the caller's (git commit, root seed, ...); metrics ``leaderboard/<agent>/<field>``;
        artifacts ``leaderboard.{csv,json,png}``, ``config.json``, ``trajectories.png``,
        ``{tournaments,audit,comparisons}.parquet`` and, per tournament, its event log
        ``eventlog/<index>/*.parquet``.
    child run per agent, named after it: params = its hyperparameters; metrics = its standing
        (``objective``, ``lift_lo``, ``win_rate``, ``rating_mu``, ``p_best``, ...) and per-day
        histories ``history/<metric>`` / ``history/objective`` with step = day, next to
        ``history/control/<...>``: control on the same tournaments, so one run shows both.
    child run ``control_arm``: its objective and histories over all tournaments.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import (
    MAX_ENTITIES_PER_BATCH,
    MAX_ENTITY_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.tournament import ratings
from arena_rl.tournament.play import TournamentResult
from arena_rl.tournament.plots import as_record, leaderboard_plot, mean_history, trajectories_plot
from arena_rl.tournament.runner import EVENTLOG_DIR

__all__ = [
    "DEFAULT_DB",
    "TRUNCATED",
    "default_tracking_uri",
    "flatten",
    "log_replay",
    "log_tournament_run",
    "tournaments_table",
    "write_run_files",
]

DEFAULT_DB = "mlflow.db"
"""File name of the default SQLite store, in the working directory, where ``mlflow ui`` looks."""

TRUNCATED = "...[truncated: full value in config.json]"
"""Ends a param or tag value cut to MLflow's length limit."""

_BAD_KEY_CHARS = re.compile(r"[^\w.\- :/]")


def _event_logs(out_dir: Path) -> list[Path]:
    """The complete event log folders of the run (``<out_dir>/eventlog/<index>``)."""
    root = out_dir / EVENTLOG_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".tmp"))


def default_tracking_uri(directory: Path | None = None) -> str:
    """``sqlite:///<directory>/mlflow.db`` (default: the working directory).

    ``mlflow ui`` started in that directory opens this store; artifacts land in its ``mlruns/``.
    """
    return f"sqlite:///{(directory or Path.cwd()).resolve() / DEFAULT_DB}"


def git_commit() -> str:
    """The checkout's commit, or "unknown" outside a git checkout (e.g. a Ray job's copy)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


MLFLOW_UI = "http://127.0.0.1:5000"
"""Where ``mlflow ui`` serves by default."""


def ui_link(tracking_uri: str | None, run_id: str) -> str:
    """The run's page in the MLflow UI, as ``mlflow ui`` serves it by default."""
    client = MlflowClient(tracking_uri=tracking_uri or default_tracking_uri())
    experiment_id = client.get_run(run_id).info.experiment_id
    return f"{MLFLOW_UI}/#/experiments/{experiment_id}/runs/{run_id}"


def log_tournament_run(
    *,
    tracking_uri: str | None,
    experiment: str,
    run_name: str,
    config: Mapping[str, Any],
    agent_params: Mapping[str, Mapping[str, Any]],
    results: Sequence[TournamentResult],
    standings: Sequence[Any],
    tags: Mapping[str, str],
    out_dir: Path,
    status: str = "FINISHED",
    reason: str = "",
    populations: Mapping[str, Any] | None = None,
) -> str:
    """Write the run's files to ``out_dir`` and log parent and child runs; return the parent id.

    The parent run belongs to ``out_dir``: a rerun there (a resumed run) continues it and its
    children instead of adding twins.

    Args:
        tracking_uri: any MLflow URI; None for :func:`default_tracking_uri`.
        experiment: experiment name, created (or restored) when needed, tagged as a
            model-development experiment so that ``mlflow ui`` opens on its runs.
        run_name: the parent run's name.
        config: the resolved config as plain data; logged as params and as ``config.json``.
        agent_params: agent name -> its hyperparameters (nested keys are joined by dots).
        results: every finished tournament, in any order.
        standings: leaderboard rows (dicts or dataclasses with ``name`` and numeric fields).
        tags: set on every run, e.g. ``git_commit`` and ``root_seed``.
        out_dir: where the artifact files are written before they are logged.
        status: how the run ended: "FINISHED", "FAILED" (some or all tournaments failed) or
            "KILLED" (interrupted); every run is terminated with it.
        reason: why it did not finish, as the runs' ``status_reason`` tag.
        populations: name -> the population (preset dataclass) tournaments were played on;
            written as ``populations.json``.

    Raises:
        MlflowException: when the store refuses; runs created so far are marked FAILED.
    """
    started = time.perf_counter()
    ordered = sorted(results, key=lambda r: r.index)
    records = [as_record(s) for s in standings]
    files = write_run_files(out_dir, config=config, results=ordered, standings=records)
    if populations:
        path = out_dir / "populations.json"
        plain = {name: dataclasses.asdict(spec) for name, spec in populations.items()}
        path.write_text(json.dumps(plain, indent=1, default=repr) + "\n")
        files.append(path)
    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, experiment, artifact_root(uri))
    stamp = int(time.time() * 1000)
    run_dir = str(out_dir.resolve())
    parent_tags = {**tags, RUN_DIR_TAG: run_dir, STATUS_REASON_TAG: reason}
    if "git_commit" in tags:
        parent_tags[MLFLOW_GIT_COMMIT] = tags["git_commit"]  # the UI shows this one natively
    parent_id, children = _parent_run(client, experiment_id, run_dir, run_name, parent_tags)
    run_ids = [parent_id]
    try:
        _log(
            client,
            parent_id,
            params=_new_params(client, parent_id, _params(config)),
            metrics=_leaderboard_metrics(records, ordered, stamp)
            + _persona_metrics(ordered, "usage", stamp),
        )
        for path in files:
            client.log_artifact(parent_id, str(path))
        for log in _event_logs(out_dir):
            client.log_artifacts(parent_id, str(log), artifact_path=f"eventlog/{log.name}")
        child_tags = {**tags, MLFLOW_PARENT_RUN_ID: parent_id, STATUS_REASON_TAG: reason}
        by_name = {str(r.get("name")): r for r in records}
        for name in _agent_names(agent_params, ordered, records):
            run_id = children.get(name) or _create_child(
                client, experiment_id, name, child_tags, role="agent"
            )
            run_ids.append(run_id)
            metrics = _standing_metrics(by_name.get(name, {}), stamp)
            metrics += _usage_metrics(ordered, name, stamp)
            metrics += _persona_metrics(ordered, name, stamp)
            metrics += _history_metrics(ordered, name, among=name, prefix=("history",), stamp=stamp)
            metrics += _history_metrics(
                ordered, CONTROL_ARM, among=name, prefix=("history", "control"), stamp=stamp
            )
            params = _new_params(client, run_id, _params(agent_params.get(name, {})))
            _log(client, run_id, params=params, metrics=metrics)
        run_id = children.get(CONTROL_ARM) or _create_child(
            client, experiment_id, CONTROL_ARM, child_tags, role="control"
        )
        run_ids.append(run_id)
        control = _control_metrics(ordered, stamp) + _persona_metrics(ordered, CONTROL_ARM, stamp)
        _log(client, run_id, metrics=control)
        # what logging itself cost (files, plots, MLflow calls), so users see it in the run
        client.log_metric(parent_id, "timing/tracking_s", time.perf_counter() - started, stamp)
    except BaseException:
        for run_id in run_ids:
            _mark_failed(client, run_id)
        raise
    for run_id in run_ids:
        client.set_tag(run_id, STATUS_REASON_TAG, reason)
        client.set_terminated(run_id, status=status)
    return parent_id


RUN_DIR_TAG = "arena_rl.run_dir"
"""The parent run's output directory: a resumed run finds its parent by it."""
STATUS_REASON_TAG = "status_reason"
"""Why a run did not finish (empty when it did)."""
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
"""MLflow's own tag: without it, ``mlflow ui`` opens an experiment on its GenAI traces page."""


def _parent_run(
    client: MlflowClient,
    experiment_id: str,
    run_dir: str,
    run_name: str,
    tags: Mapping[str, str],
) -> tuple[str, dict[str, str]]:
    """The parent run of ``run_dir`` (continued, with its children by arm) or a new one."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RUN_DIR_TAG}` = '{run_dir}'",
        max_results=50,
    )
    parents = [r for r in found if MLFLOW_PARENT_RUN_ID not in r.data.tags]
    if not parents:
        run = client.create_run(experiment_id, run_name=run_name, tags=_tag_dict(tags))
        return run.info.run_id, {}
    parent_id = parents[0].info.run_id
    client.update_run(parent_id, status="RUNNING", name=run_name)
    for key, value in _tag_dict(tags).items():
        client.set_tag(parent_id, key, value)
    kids = client.search_runs(
        [experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_id}'"
    )
    children = {r.data.tags.get("arm", ""): r.info.run_id for r in kids}
    for run_id in children.values():
        client.update_run(run_id, status="RUNNING")
    return parent_id, children


def _new_params(client: MlflowClient, run_id: str, params: list[Param]) -> list[Param]:
    """The params a run does not hold yet (MLflow refuses to change one, and a resumed run
    logs the same config again; one that changed, e.g. more tournaments, keeps its first
    value and the new one is in config.json)."""
    held = client.get_run(run_id).data.params
    return [p for p in params if p.key not in held]


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a local SQLite store (``<its folder>/mlruns``), not in whatever
    directory the command ran from; None lets MLflow choose (servers, other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    folder = Path(uri.removeprefix("sqlite:///")).resolve().parent
    return str(folder / "mlruns")


def write_run_files(
    out_dir: Path,
    *,
    config: Mapping[str, Any],
    results: Sequence[TournamentResult],
    standings: Sequence[Any],
) -> list[Path]:
    """Write the leaderboard, config, Parquet tables and plots to ``out_dir``; return the paths.

    Files: ``leaderboard.csv``, ``leaderboard.json``, ``config.json``, ``tournaments.parquet``,
    ``audit.parquet``, ``comparisons.parquet``, and ``leaderboard.png`` / ``trajectories.png``
    when there is something to plot. They are useful without MLflow too.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(results, key=lambda r: r.index)
    records = [_plain(as_record(s)) for s in standings]
    paths = {name: out_dir / name for name in _FILES}
    _write_csv(paths["leaderboard.csv"], records)
    paths["leaderboard.json"].write_text(json.dumps(records, indent=2, allow_nan=False) + "\n")
    paths["config.json"].write_text(json.dumps(config, indent=2, default=str) + "\n")
    pq.write_table(tournaments_table(ordered), paths["tournaments.parquet"])
    pq.write_table(_audit_table(ordered), paths["audit.parquet"])
    pq.write_table(_comparisons_table(ordered), paths["comparisons.parquet"])
    written = [paths[name] for name in _FILES if name.endswith((".csv", ".json", ".parquet"))]
    if records:
        leaderboard_plot(records).savefig(paths["leaderboard.png"], dpi=100)
        written.append(paths["leaderboard.png"])
    if ordered:
        trajectories_plot(ordered).savefig(paths["trajectories.png"], dpi=100)
        written.append(paths["trajectories.png"])
    return written


_FILES = (
    "leaderboard.csv",
    "leaderboard.json",
    "config.json",
    "tournaments.parquet",
    "audit.parquet",
    "comparisons.parquet",
    "leaderboard.png",
    "trajectories.png",
)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def tournaments_table(results: Sequence[TournamentResult]) -> pa.Table:
    """One row per tournament and agent: outcome, guardrail counts (``guardrail_<count>``),
    faults and mean decision time (ms), with control's objective on the same tournament."""
    keys = list(dict.fromkeys(k for r in results for g in r.guardrails.values() for k in g))
    rows = [
        {
            "tournament": r.index,
            "seed": r.seed,
            "pairing": r.pairing,
            "agent": agent,
            "objective": r.objective.get(agent, math.nan),
            "control_objective": r.objective.get(CONTROL_ARM, math.nan),
            "lift": r.lift.get(agent, math.nan),
            "regret": r.regret.get(agent, math.nan),
            **{f"guardrail_{k}": int(r.guardrails.get(agent, {}).get(k, 0)) for k in keys},
            "faults": len(r.faults.get(agent, [])),
            "fault_messages": list(r.faults.get(agent, [])),
            "decision_ms": r.decision_ms.get(agent, math.nan),
            **{f"usage_{k}": v for k, v in r.usage.get(agent, {}).items()},
            **{f"persona_{k}": v for k, v in r.personas.get(agent, {}).items()},
            "notes": list(r.notes.get(agent, [])),
        }
        for r in results
        for agent in r.agents
    ]
    return _table(rows, empty=("tournament", "agent"))


def _audit_table(results: Sequence[TournamentResult]) -> pa.Table:
    """Every guardrail decision of every tournament, tagged with its tournament index."""
    rows = [{"tournament": r.index, **entry} for r in results for entry in r.audit]
    return _table(rows, empty=("tournament",))


def _comparisons_table(results: Sequence[TournamentResult]) -> pa.Table:
    """Every metric comparison against control of every tournament (Holm within a tournament)."""
    rows = [
        {"tournament": r.index, "pairing": r.pairing, **comparison}
        for r in results
        for comparison in r.comparisons
    ]
    return _table(rows, empty=("tournament",))


def _table(rows: Sequence[Mapping[str, Any]], *, empty: Sequence[str]) -> pa.Table:
    """A table with the union of the rows' keys; an empty one still names its key columns."""
    if not rows:
        return pa.table({name: pa.array([], pa.null()) for name in empty})
    columns = dict.fromkeys(k for row in rows for k in row)
    return pa.table({c: _column([row.get(c) for row in rows]) for c in columns})


def _column(values: list[Any]) -> pa.Array:
    """Arrow's own type where it infers one; JSON text where values are mixed or nested maps."""
    values = [json.dumps(v, default=str) if isinstance(v, Mapping) else v for v in values]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(
            [v if v is None or isinstance(v, str) else json.dumps(v, default=str) for v in values],
            pa.string(),
        )


def _write_csv(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for r in records for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)


def _plain(record: Mapping[str, Any]) -> dict[str, Any]:
    """Non-finite floats as None: strict JSON has no nan, and a CSV cell is better empty."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()
    }


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The experiment's id, creating it (tagged as a model-development experiment), or
    restoring it if it was deleted."""
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(
                name, artifact_location=artifact_location, tags=dict([EXPERIMENT_KIND])
            )
        except MlflowException:  # another invocation created it in the meantime
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    if EXPERIMENT_KIND[0] not in found.tags:
        client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
    return str(found.experiment_id)


def _create_child(
    client: MlflowClient, experiment_id: str, name: str, tags: Mapping[str, str], *, role: str
) -> str:
    run = client.create_run(
        experiment_id, run_name=name, tags=_tag_dict({**tags, "arm": name, "arm_role": role})
    )
    return run.info.run_id


def _agent_names(
    agent_params: Mapping[str, Any],
    results: Sequence[TournamentResult],
    records: Sequence[Mapping[str, Any]],
) -> list[str]:
    """Configured agents first, in config order, then any that only results or standings name."""
    names = [*agent_params, *(n for r in results for n in r.agents)]
    names += [str(r["name"]) for r in records if "name" in r]
    return [n for n in dict.fromkeys(names) if n != CONTROL_ARM]


def _numeric_fields(record: Mapping[str, Any]) -> dict[str, float]:
    """The record's numbers (bools and text left out)."""
    return {
        k: float(v)
        for k, v in record.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _usage_metrics(results: Sequence[TournamentResult], name: str, stamp: int) -> list[Metric]:
    return [
        Metric(_key("usage", k), v, stamp, 0)
        for k, v in ratings.usage_totals(results, name).items()
    ]


def _standing_metrics(record: Mapping[str, Any], stamp: int) -> list[Metric]:
    return [Metric(_key(k), v, stamp, 0) for k, v in _numeric_fields(record).items()]


def _leaderboard_metrics(
    records: Sequence[Mapping[str, Any]], results: Sequence[TournamentResult], stamp: int
) -> list[Metric]:
    metrics = [
        Metric(_key("leaderboard", str(r.get("name")), field), value, stamp, 0)
        for r in records
        for field, value in _numeric_fields(r).items()
    ]
    control = [r.objective[CONTROL_ARM] for r in results if CONTROL_ARM in r.objective]
    if control:
        mean = math.fsum(control) / len(control)
        metrics.append(Metric(_key("leaderboard", CONTROL_ARM, "objective"), mean, stamp, 0))
    metrics.append(Metric("tournaments", float(len(results)), stamp, 0))
    return metrics


def _persona_metrics(results: Sequence[TournamentResult], arm: str, stamp: int) -> list[Metric]:
    """An arm's persona-user totals as ``persona/<key>`` (``arm="usage"``: their model use)."""
    return [
        Metric(_key("persona", k), v, stamp, 0)
        for k, v in ratings.persona_totals(results, arm).items()
    ]


def _control_metrics(results: Sequence[TournamentResult], stamp: int) -> list[Metric]:
    """Control's mean objective and tournament count, and its histories over all tournaments."""
    objective = [r.objective[CONTROL_ARM] for r in results if CONTROL_ARM in r.objective]
    metrics = [Metric("n", float(len(objective)), stamp, 0)]
    if objective:
        metrics.append(Metric("objective", math.fsum(objective) / len(objective), stamp, 0))
    history = _history_metrics(
        results, CONTROL_ARM, among=CONTROL_ARM, prefix=("history",), stamp=stamp
    )
    return metrics + history


def _history_metrics(
    results: Sequence[TournamentResult],
    arm: str,
    *,
    among: str,
    prefix: tuple[str, ...],
    stamp: int,
) -> list[Metric]:
    """``<prefix>/<series>`` per day (step = day index, from 0) of the arm's mean trajectory."""
    return [
        Metric(_key(*prefix, series), float(value), stamp, day)
        for series, values in mean_history(results, arm, among=among).items()
        for day, value in enumerate(values)
    ]


def _params(data: Mapping[str, Any]) -> list[Param]:
    """Flattened params as text, cut to MLflow's length limit (the full config is an artifact)."""
    return [
        Param(
            _key(k),
            _clip(v if isinstance(v, str) else json.dumps(v, default=str), MAX_PARAM_VAL_LENGTH),
        )
        for k, v in flatten(data).items()
    ]


def _tag_dict(tags: Mapping[str, Any]) -> dict[str, str]:
    return {_key(k): _clip(str(v), MAX_TAG_VAL_LENGTH) for k, v in tags.items()}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _key(*parts: str) -> str:
    """An MLflow-valid key: parts joined by ``/``, other characters replaced by ``_``."""
    cleaned = [_BAD_KEY_CHARS.sub("_", p.replace("/", "_")) for p in parts]
    # "." and ".." would resolve to other paths, which MLflow refuses
    cleaned = ["_" if p.strip(".") == "" else p for p in cleaned]
    return "/".join(cleaned)[:MAX_ENTITY_KEY_LENGTH]


def _log(
    client: MlflowClient,
    run_id: str,
    *,
    metrics: Sequence[Metric] = (),
    params: Sequence[Param] = (),
    tags: Sequence[RunTag] = (),
) -> None:
    for batch_metrics, batch_params, batch_tags in _batches(metrics, params, tags):
        client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)


def _batches(
    metrics: Sequence[Metric], params: Sequence[Param], tags: Sequence[RunTag]
) -> Iterator[tuple[list[Metric], list[Param], list[RunTag]]]:
    """Split into calls MLflow accepts: ≤100 params, ≤100 tags, ≤1000 metrics, ≤1000 in all."""
    m, p, t = list(metrics), list(params), list(tags)
    while m or p or t:
        batch_p, p = p[:MAX_PARAMS_TAGS_PER_BATCH], p[MAX_PARAMS_TAGS_PER_BATCH:]
        batch_t, t = t[:MAX_PARAMS_TAGS_PER_BATCH], t[MAX_PARAMS_TAGS_PER_BATCH:]
        room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(batch_p) - len(batch_t))
        batch_m, m = m[:room], m[room:]
        yield batch_m, batch_p, batch_t


def _mark_failed(client: MlflowClient, run_id: str) -> None:
    # already failing: the original error is the one to report
    with contextlib.suppress(Exception):
        client.set_terminated(run_id, status="FAILED")


REPLAY_OF_TAG = "replay_of"
"""On a replay's run: the MLflow run id (or folder) of the run whose log it replays."""


def log_replay(
    config: Mapping[str, Any],
    replay_of: str,
    summary: Mapping[str, float],
    table: pa.Table,
    estimates: Mapping[str, Any],
) -> str:
    """One MLflow run for a replay: its config as params, ``summary`` (decision points,
    violations, agreement, faults, the logged policy's mean reward) and each estimator's value,
    CI and effective sample size as metrics, the per-decision replay as ``replay.parquet`` and
    the estimates as ``ope.json``; tagged with the run it replays. Returns the run id."""
    uri = config["tracking"]["uri"] or default_tracking_uri()
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, config["tracking"]["experiment"], artifact_root(uri))
    run = client.create_run(
        experiment_id,
        run_name=f"replay {config['policy']} on {Path(str(replay_of)).name}",
        tags={REPLAY_OF_TAG: str(replay_of), "arena_rl.kind": "replay", "git_commit": git_commit()},
    )
    run_id: str = run.info.run_id
    stamp = int(time.time() * 1000)
    values = dict(summary)
    for e in estimates.values():
        values |= {
            f"ope/{e.name}/{k}": getattr(e, k) for k in ("value", "ci_low", "ci_high", "ess")
        }
    metrics = [Metric(_key(k), float(v), stamp, 0) for k, v in values.items() if math.isfinite(v)]
    try:
        _log(client, run_id, params=_params(flatten(config)), metrics=metrics)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "replay.parquet"
            pq.write_table(table, path)
            ope = Path(folder) / "ope.json"
            ope.write_text(
                json.dumps([dataclasses.asdict(e) for e in estimates.values()], indent=1)
            )
            client.log_artifact(run_id, str(path))
            client.log_artifact(run_id, str(ope))
    except Exception:
        _mark_failed(client, run_id)
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id
