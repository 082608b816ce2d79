"""Do LLM persona users move the way the behavioural model says when the economy changes?

Usage: ``python scripts/persona_calibration.py [--days 7] [--seeds 1] [--out DIR]
[--no-mlflow] [--tracking-uri URI] [persona_users settings as key=value, e.g. llm.backend=openai]``

For each change of :data:`arena_rl.personas.calibration.CHANGES` runs every persona once per
arm under the default economy and under the change (LLM persona users), and the personas'
twins in the behavioural model (20,000 per arm, common random numbers); prints the table of
both effects per behaviour and whether they agree, writes it to ``DIR/persona_calibration.md``
and ``.json``, and logs both to MLflow (experiment ``arena_rl_personas``) as artifacts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from arena_rl.personas.calibration import CHANGES, calibrate, markdown, records
from arena_rl.personas.users import PersonaUsersConfig


def settings(pairs: list[str]) -> dict:
    """``a.b=value`` pairs as a nested mapping (values read as YAML)."""
    out: dict = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("overrides", nargs="*", help="persona_users settings, key=value")
    args = parser.parse_args()
    data = settings(args.overrides)
    per_arm = len(PersonaUsersConfig.parse({**data, "per_arm": 1}).chosen())
    config = PersonaUsersConfig.parse({**data, "per_arm": per_arm})  # each persona once an arm
    calls = len(CHANGES) * 2 * per_arm * args.days * args.seeds
    worst = config.llm.estimate_usd(calls, 2500)
    print(
        f"{len(CHANGES)} changes x 2 arms x {per_arm} personas x {args.days} days x "
        f"{args.seeds} seeds: at most {calls:,} model calls, worst-case cost ${worst:.4f}"
    )
    started = time.perf_counter()
    rows, usage = calibrate(config, CHANGES, args.days, list(range(args.seeds)))
    took = time.perf_counter() - started
    table = markdown(rows)
    print(table)
    print(f"\n{usage['calls']:.0f} model calls, {usage['cache_hits']:.0f} cache hits, {took:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    md, js = args.out / "persona_calibration.md", args.out / "persona_calibration.json"
    md.write_text(table + "\n")
    settings_used = config.model_dump(mode="json")
    js.write_text(json.dumps({"settings": settings_used, "days": args.days, "seeds": args.seeds,
                              "rows": records(rows), "usage": usage}, indent=1))  # fmt: skip
    if not args.no_mlflow:
        import mlflow

        from arena_rl.tournament.tracking import default_tracking_uri

        mlflow.set_tracking_uri(args.tracking_uri or default_tracking_uri())
        mlflow.set_experiment("arena_rl_personas")
        with mlflow.start_run(run_name="persona calibration") as run:
            params = {"days": args.days, "seeds": args.seeds, "personas": per_arm}
            mlflow.log_params({**params, "backend": config.llm.backend, "model": config.llm.model})
            agree = [r for r in rows if r.agrees != "n/a"]
            share = sum(r.agrees == "yes" for r in agree) / len(agree) if agree else float("nan")
            mlflow.log_metrics({"same_direction_share": share,
                                **{f"usage/{k}": v for k, v in usage.items()}})  # fmt: skip
            mlflow.log_artifact(str(md))
            mlflow.log_artifact(str(js))
        print(f"MLflow run {run.info.run_id} (experiment arena_rl_personas)")


if __name__ == "__main__":
    main()
