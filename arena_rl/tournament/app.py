"""The tournament command: seeded tournaments on Ray, a leaderboard, and MLflow runs.

A Hydra app over ``conf/config.yaml``, run as ``python scripts/tournament.py [overrides]`` from
a checkout or ``python -m arena_rl tournament [overrides]`` wherever arena_rl is installed.

Results land in the run's output directory (Hydra's, e.g. outputs/<date>/<time>/): one JSON
file per finished tournament, written before more are scheduled, so rerunning with the same
directory (``hydra.run.dir=<dir>``) resumes. Then a leaderboard, and an MLflow parent run with
one child run per agent (``mlflow ui`` from the project directory shows them).
"""

from __future__ import annotations

import faulthandler
import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from arena_rl.config import ConfigError, Settings, build_agent, settings_from
from arena_rl.scenarios.gamification.specs import CONF_DIR
from arena_rl.tournament import ratings, runner, tracking


def run(settings: Settings, out_dir: Path) -> int:
    """Run every planned tournament, print the leaderboard, log to MLflow; the exit code."""
    truth = "from the cache" if settings.truth_cached else "searched, now cached"
    print(f"ground truth: the best plan's value {settings.specs[0].plan_value:.3f} ({truth})")
    in_process = settings.num_workers == 0
    if not in_process:
        runner.connect(settings.address, settings.num_workers)
    outcome = runner.run_tournaments(
        settings.specs,
        out_dir,
        build_agent,
        in_process=in_process,
        num_workers=settings.num_workers,
        max_retries=settings.max_retries,
        progress=settings.progress,
    )
    if not outcome.results:
        print("no tournament finished", file=sys.stderr)
        return 1
    standings = ratings.leaderboard(outcome.results, seed=settings.seed)
    records = ratings.standings_records(standings)
    (out_dir / "leaderboard.json").write_text(json.dumps(records, indent=2))
    print(ratings.format_leaderboard(standings))
    usage = ratings.format_usage(outcome.results)
    if usage:
        print(f"\n{usage}")
    if outcome.failed:
        print(f"\n{len(outcome.failed)} tournament(s) failed: {outcome.failed}", file=sys.stderr)
    if settings.tracking_enabled:
        run_id = tracking.log_tournament_run(
            tracking_uri=settings.tracking_uri,
            experiment=settings.tracking_experiment,
            run_name=out_dir.name,
            config=settings.resolved,
            agent_params={
                n: {k: v for k, v in c.items() if k != "_target_"} | {"target": c["_target_"]}
                for n, c in settings.agents.items()
            },
            results=outcome.results,
            standings=records,
            tags={"git_commit": tracking.git_commit(), "root_seed": str(settings.seed)},
            out_dir=out_dir,
        )
        print(f"\nMLflow run {run_id} (experiment {settings.tracking_experiment!r})")
    return 130 if outcome.interrupted else (2 if outcome.failed else 0)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    faulthandler.enable()  # a native crash (a model's library, say) prints where, not nothing
    try:
        settings = settings_from(cfg)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    code = run(settings, out_dir)
    if code:
        sys.exit(code)
