"""Log the served experiment to MLflow exactly like one tournament, decisions included.

The served experiment becomes one :class:`~arena_rl.tournament.play.TournamentResult` (index 0,
one "agent" per treatment variant, named after it), so
``arena_rl.tournament.tracking.log_tournament_run`` gives the same parent/child runs,
leaderboard, histories and ``audit.parquet`` (with every decision's reasoning) as a tournament.
The full API-shaped decision log goes next to it as ``decisions.json``. Regret is NaN: a served
experiment has no ground-truth plan search.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.personas.users import PersonaUsers
from arena_rl.server.state import ServedExperiment
from arena_rl.tournament import ratings, tracking
from arena_rl.tournament.play import TournamentResult


def served_result(exp: ServedExperiment) -> tuple[TournamentResult, dict[str, Any]]:
    """The experiment so far as a tournament result, plus its API decision logs by name."""
    snap = exp.snapshot()
    name_of = {vid: v.name for vid, v in exp.variants.items()}
    name_of[exp.control_id] = CONTROL_ARM
    names = [name_of[vid] for vid in exp.order[1:]]
    objective = {name_of[v]: x for v, x in snap["objective"].items()}
    comparisons = []
    for comparison in snap["comparisons"]:
        record = asdict(comparison)
        record["variant"] = name_of[record["variant"]]
        comparisons.append(record)
    audit = [{**r, "variant": name_of.get(str(r["variant"]), r["variant"])} for r in snap["audit"]]
    result = TournamentResult(
        index=0,
        seed=exp.seed,
        pairing="served",
        agents=names,
        objective=objective,
        lift={n: objective[n] - objective[CONTROL_ARM] for n in names},
        regret=dict.fromkeys(names, math.nan),
        comparisons=comparisons,
        guardrails={name_of[v]: c for v, c in snap["counts"].items()},
        faults={n: [] for n in names},
        decision_ms=dict.fromkeys(names, 0.0),
        history={name_of[v]: h for v, h in snap["history"].items()},
        daily_value={name_of[v]: x for v, x in snap["daily_value"].items()},
        audit=audit,
        personas=_personas(exp, name_of),
    )
    decisions = {exp.variants[v].name: log for v, log in snap["decisions"].items()}
    return result, decisions


def _personas(exp: ServedExperiment, name_of: dict[str, str]) -> dict[str, dict[str, float]]:
    """The persona users' totals by variant name, and their model use (empty without them)."""
    actors = exp.core.actors
    if not isinstance(actors, PersonaUsers):
        return {}
    totals = {name_of[arm]: t for arm, t in actors.summary().items()}
    return {**totals, "usage": actors.usage_dict()}


def log_served(
    exp: ServedExperiment,
    *,
    tracking_uri: str | None,
    experiment: str,
    run_name: str,
    config: dict[str, Any],
    out_dir: Path,
    tags: dict[str, str] | None = None,
) -> str:
    """Log the served experiment now; return the MLflow parent run id. ``tags`` are added to
    the parent run (the runtime says why it logged and which server start it was)."""
    result, decisions = served_result(exp)
    standings = ratings.standings_records(ratings.leaderboard([result], seed=exp.seed))
    run_id = tracking.log_tournament_run(
        tracking_uri=tracking_uri,
        experiment=experiment,
        run_name=run_name,
        config=config,
        agent_params={n: {"variant": "served"} for n in result.agents},
        results=[result],
        standings=standings,
        tags={
            "git_commit": tracking.git_commit(),
            "root_seed": str(exp.seed),
            "arena_experiment_id": exp.experiment_id,
            "source": "arena_rl.server",
            **(tags or {}),
        },
        out_dir=out_dir,
    )
    path = out_dir / "decisions.json"
    path.write_text(json.dumps(decisions, indent=2, default=str) + "\n")
    MlflowClient(tracking_uri or tracking.default_tracking_uri()).log_artifact(run_id, str(path))
    return run_id
