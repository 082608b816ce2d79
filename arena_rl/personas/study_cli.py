"""``python -m arena_rl personas study``: several focus-group studies (changes × runs) in this
process or as Ray tasks, compared side by side, written to files and logged to one MLflow run.

One study is :mod:`arena_rl.personas.study`'s; this module is the command around it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from arena_rl.llm.backends import BackendError
from arena_rl.llm.settings import LLMSettings
from arena_rl.personas import analysis
from arena_rl.personas.spec import PersonaFileError, load_personas
from arena_rl.personas.study import (
    StudySpec,
    parse_change,
    run_study,
    write_study,
)

# ---- several studies ----------------------------------------------------------------------------


def run_studies(
    specs: Sequence[StudySpec],
    workers: int,
    address: str | None = None,
    on_done: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every study's result, in the order of ``specs`` whatever order they finish in.

    Args:
        specs: the studies (several changes × runs).
        workers: 0 runs them one after another in this process; N runs up to N at once as
            Ray tasks of one CPU each (a study is seconds of work: one task per study).
        address: the Ray cluster to join (see :func:`arena_rl.tournament.runner.connect`).
        on_done: called with (index, result) as each finishes, e.g. to save it at once.
    """
    done = on_done or (lambda index, result: None)
    if workers == 0:
        results = []
        for index, spec in enumerate(specs):
            results.append(run_study(spec))
            done(index, results[-1])
        return results
    import ray

    from arena_rl.tournament.runner import connect, disconnect

    ours = not ray.is_initialized()
    connect(address, workers)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_study)
        queue = list(enumerate(specs))
        pending: dict[Any, int] = {}
        found: dict[int, dict[str, Any]] = {}
        while queue or pending:
            while queue and len(pending) < workers:  # at most `workers` studies at once
                index, spec = queue.pop(0)
                pending[task.remote(spec)] = index
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                found[index] = ray.get(ref)
                done(index, found[index])
        return [found[i] for i in range(len(specs))]
    finally:
        if ours:
            disconnect()


# ---- MLflow -------------------------------------------------------------------------------------


def log_studies(
    uri: str | None,
    experiment: str,
    params: Mapping[str, Any],
    results: Sequence[Mapping],
    out: Path,
) -> str:
    """One MLflow run for the invocation, from the driver: params, the studies' metrics
    summed (``study/...``), each change's comparison row (``change<i>/...``) and every file
    under ``out`` as artifacts. Returns the run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    # the tournament's own experiment set-up, so studies land beside tournaments' runs
    from arena_rl.tournament.tracking import (
        artifact_root,
        default_tracking_uri,
        ensure_experiment,
        git_commit,
    )

    uri = uri or default_tracking_uri()
    client = MlflowClient(uri)
    run = client.create_run(
        ensure_experiment(client, experiment, artifact_root(uri)),
        run_name=f"study: {' | '.join(params['changes'])[:200]}",
        tags={"arena_rl.kind": "study", "git_commit": git_commit()},
    )
    run_id: str = run.info.run_id
    stamp = int(time.time() * 1000)
    values = {f"study/{k}": v for k, v in _summed(results).items()}
    for i, row in enumerate(analysis.compare(results), start=1):
        values |= {f"change{i}/{k}": v for k, v in row.items() if k != "change"}
    metrics = [Metric(k, float(v), stamp, 0) for k, v in values.items() if math.isfinite(v)]
    flat = {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in params.items()}
    try:
        client.log_batch(
            run_id, metrics=metrics, params=[Param(k, str(v)[:6000]) for k, v in flat.items()]
        )
        client.log_artifacts(run_id, str(out))
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def _summed(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The studies' metrics added up (mean_response_s averaged), with counts of studies."""
    total: dict[str, float] = {"studies": len(results)}
    total["budget_reached"] = sum(r["status"] == "budget_reached" for r in results)
    for r in results:
        for k, v in r["metrics"].items():
            total[k] = total.get(k, 0.0) + v
    total["mean_response_s"] = _mean_finite(r["metrics"]["mean_response_s"] for r in results)
    return total


def _mean_finite(values: Iterable[float]) -> float:
    known = [v for v in values if math.isfinite(v)]
    return sum(known) / len(known) if known else math.nan


# ---- the command line ---------------------------------------------------------------------------

PROG = "python -m arena_rl personas study"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Personas discuss proposed XP economy changes; several changes × runs "
        "are compared side by side.",
    )
    p.add_argument(
        "--change",
        action="append",
        required=True,
        metavar="CHANGE",
        help="free text, or NAME=VALUE,... knob assignments; repeat to compare",
    )
    p.add_argument("--personas", default="default", help="persona file (JSON) or its name")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--k", type=int, default=4, help="the file's first K personas")
    who.add_argument("--ids", help="comma-separated persona ids, in speaking order")
    p.add_argument("--turns", type=int, default=3, help="rounds of discussion")
    p.add_argument("--runs", type=int, default=1, help="runs per change (seeds SEED..SEED+R-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--history", type=int, default=4, help="last messages a persona sees")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Ray workers; 0 runs in-process (default: 0 for one study, else cores)",
    )
    p.add_argument("--address", default=None, help="Ray cluster to join (default: local)")
    p.add_argument("--backend", choices=("local", "openai", "anthropic"), default="local")
    p.add_argument("--model", help="model name (openai/anthropic)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--prices", help="price table file (default: the shipped one)")
    p.add_argument(
        "--budget-usd",
        type=float,
        default=None,
        help="the most the whole invocation may spend (split evenly over studies)",
    )
    p.add_argument("--cache-path", help="answer cache file (default: the per-user one)")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument(
        "--llm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other LLM setting, e.g. max_calls_per_minute=30 (repeatable)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: studies/<time>)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: ./mlflow.db)")
    p.add_argument("--experiment", default="personas-study", help="MLflow experiment name")
    p.add_argument("--no-mlflow", action="store_true")
    return p  # fmt: skip


def _settings(args: argparse.Namespace) -> LLMSettings:
    chosen = {
        "backend": args.backend,
        "model": args.model,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "prices": args.prices,
        "budget_usd": args.budget_usd,
        "cache_path": args.cache_path,
        "cache": False if args.no_cache else None,
    }
    data = {k: v for k, v in chosen.items() if v is not None}
    for item in args.llm:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--llm {item!r}: expected KEY=VALUE")
        data[key.strip()] = yaml.safe_load(value)
    return LLMSettings.parse(data, "llm")


def build_specs(args: argparse.Namespace) -> list[StudySpec]:
    """Every study the arguments ask for (change-major, then run), checked before any call.

    Raises:
        ValueError, PersonaFileError: the first bad input, named.
    """
    if args.runs < 1:
        raise ValueError(f"--runs must be at least 1, got {args.runs}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}")
    if args.budget_usd is not None and not args.budget_usd > 0:
        raise ValueError(f"--budget-usd must be above 0, got {args.budget_usd:g}")
    changes = [parse_change(c) for c in args.change]
    personas = load_personas(args.personas)
    if args.ids:
        by_id = {p.id: p for p in personas}
        wanted = [i.strip() for i in args.ids.split(",") if i.strip()]
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            raise ValueError(f"--ids: no persona {', '.join(unknown)} in {args.personas}")
        chosen = [by_id[i] for i in wanted]
    elif not 1 <= args.k <= len(personas):
        raise ValueError(
            f"--k must be between 1 and {len(personas)} ({args.personas} has "
            f"{len(personas)} personas), got {args.k}"
        )
    else:
        chosen = personas[: args.k]
    settings = _settings(args)
    jobs = len(changes) * args.runs
    if settings.budget_usd is not None:
        settings = settings.model_copy(update={"budget_usd": settings.budget_usd / jobs})
    return [
        StudySpec(
            tuple(chosen), c, args.turns, args.seed + r, settings, args.history, args.personas
        )
        for c in changes
        for r in range(args.runs)
    ]


def main(argv: list[str]) -> int:
    """Run the studies; 0 when they ran (a budget that ended some is not a failure), 2 for
    bad input (nothing was called), 1 when the backend cannot answer at all."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        specs = build_specs(args)
        worst = sum(s.worst_case_usd() for s in specs)
        if specs[0].llm.budget_usd is not None and math.isnan(worst):
            raise ValueError(
                "--budget-usd needs a priced model; this one is not in the price table"
            )
    except (ValueError, PersonaFileError, BackendError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    requests = sum(s.requests for s in specs)
    cost = "unknown (the model has no price)" if math.isnan(worst) else f"${worst:.4f}"
    cap = f"; budget ${args.budget_usd:g}" if args.budget_usd else ""
    print(f"{len(specs)} studies, {requests} requests at most: worst case {cost}{cap}")
    out = args.out or Path("studies") / time.strftime("%Y%m%d-%H%M%S")
    folders = [out] if len(specs) == 1 else [
        out / f"change{i // args.runs + 1}-seed{s.seed}" for i, s in enumerate(specs)
    ]  # fmt: skip

    def save(index: int, result: dict[str, Any]) -> None:
        write_study(result, folders[index])
        m = result["metrics"]
        print(f"  {folders[index]}: {result['status']}, {m['messages']} messages, "
              f"{m['calls']} calls, {m['cache_hits']} cached, {m['errors']} errors")  # fmt: skip

    try:  # once, here: a backend that cannot answer fails before Ray starts
        specs[0].llm.make_backend().check()
    except BackendError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    workers = args.workers if args.workers is not None else 0 if len(specs) == 1 else min(
        len(specs), os.cpu_count() or 1
    )  # fmt: skip
    results = run_studies(specs, workers, args.address, save)
    rows = analysis.compare(results)
    analysis.write_comparison(rows, out)
    print(analysis.comparison_markdown(rows), end="")
    print(f"{time.perf_counter() - started:.1f} s; files in {out}")
    if not args.no_mlflow:
        params = {
            "changes": [s.change.text for s in specs[:: args.runs]],
            "k": len(specs[0].personas),
            "turns": args.turns,
            "runs": args.runs,
            "seed": args.seed,
            "personas": [p.id for p in specs[0].personas],
            "persona_file": args.personas,
            "backend": specs[0].llm.backend,
            "model": specs[0].llm.model or specs[0].llm.model_path or "default",
            "temperature": specs[0].llm.temperature,
            "max_tokens": specs[0].llm.max_tokens,
            "budget_usd": args.budget_usd,
        }
        run_id = log_studies(args.tracking_uri, args.experiment, params, results, out)
        print(f"MLflow run {run_id}")
    return 0
