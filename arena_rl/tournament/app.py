"""The tournament command: seeded tournaments on Ray, a leaderboard, and MLflow runs.

A Hydra app over ``conf/config.yaml``, run as ``python scripts/tournament.py [overrides]`` from
a checkout or ``python -m arena_rl tournament [overrides]`` wherever arena_rl is installed.

Results land in the run's output directory (Hydra's, e.g. outputs/<date>/<time>/): one JSON
file per finished tournament, written before more are scheduled, so rerunning with the same
directory (``hydra.run.dir=<dir>``) resumes. Then a leaderboard, and an MLflow parent run with
one child run per agent (``mlflow ui`` from the project directory shows them).
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import arena_rl
from arena_rl.config import ConfigError, Settings, build_agent, settings_from
from arena_rl.scenarios.specs import CONF_DIR
from arena_rl.tournament import ratings, runner
from arena_rl.tournament.live_report import LiveReport
from arena_rl.tournament.play import CONTROL_ARM, TournamentSpec

if TYPE_CHECKING:
    from arena_rl.live.page import LivePage


class Split:
    """Where a command's wall time goes, phase by phase (printed at the end of a run)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.phases: dict[str, float] = {"start-up": self._last - arena_rl.IMPORTED_AT}

    def lap(self, phase: str) -> None:
        """Charge the time since the last lap to ``phase``."""
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._last
        self._last = now

    def line(self) -> str:
        total = sum(self.phases.values())
        parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.phases.items())
        return f"time: {total:.1f} s in all: {parts}"


def run(settings: Settings, out_dir: Path, split: Split) -> int:
    """Run every planned tournament, print the leaderboard, log to MLflow; the exit code."""
    truth = "from the cache" if settings.truth_cached else "searched, now cached"
    values = sorted({s.plan_value for s in settings.specs if s.plan_value is not None})
    shown = f"{values[0]:.3f}" if len(values) == 1 else f"{values[0]:.3f} to {values[-1]:.3f}"
    print(f"ground truth: the best plan's value {shown} ({truth})")
    print(measured_on(settings))
    if settings.personas is not None:
        print(persona_estimate(settings))
    in_process = settings.num_workers == 0
    try:
        runner.ResultStore(out_dir).claim(settings.specs)  # before Ray: a stale directory
    except runner.StaleResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    page, live = open_live_page(settings, run_name(settings, out_dir))
    if not in_process:
        runner.connect(settings.address, settings.num_workers)
        split.lap("Ray start")
    outcome = runner.run_tournaments(
        settings.specs,
        out_dir,
        build_agent,
        in_process=in_process,
        num_workers=settings.num_workers,
        max_retries=settings.max_retries,
        progress=settings.progress,
        live=live,
    )
    split.phases["workers' start"] = outcome.startup_s
    split.lap("playing")
    split.phases["playing"] -= outcome.startup_s
    status, reason = run_status(outcome, len(settings.specs))
    standings: list[ratings.AgentStanding] = []
    if outcome.results:
        standings = ratings.leaderboard(outcome.results, seed=settings.seed)
        records = ratings.standings_records(standings)
        (out_dir / "leaderboard.json").write_text(json.dumps(records, indent=2))
        print(ratings.format_leaderboard(standings))
        print(measured_on(settings))
        for block in (
            ratings.format_usage(outcome.results),
            ratings.format_personas(outcome.results),
        ):
            if block:
                print(f"\n{block}")
    else:
        records = []
        print("no tournament finished", file=sys.stderr)
    if outcome.failed:
        print(f"\n{len(outcome.failed)} tournament(s) failed: {outcome.failed}", file=sys.stderr)
    split.lap("leaderboard")
    if settings.process_views and outcome.results:
        draw_process_views(out_dir, [r.index for r in outcome.results], settings.specs[0])
        split.lap("process views")
    mlflow_run = None
    if settings.tracking_enabled:
        from arena_rl.tournament import tracking  # MLflow and matplotlib: ~1.4 s of imports

        run_id = tracking.log_tournament_run(
            tracking_uri=settings.tracking_uri,
            experiment=settings.tracking_experiment,
            run_name=run_name(settings, out_dir),
            config=settings.resolved,
            agent_params={
                n: {k: v for k, v in c.items() if k != "_target_"} | {"target": c["_target_"]}
                for n, c in settings.agents.items()
            },
            results=outcome.results,
            standings=records,
            tags={
                "git_commit": tracking.git_commit(),
                "root_seed": str(settings.seed),
                "populations": measured_on(settings),
            },
            out_dir=out_dir,
            populations={s.population.name: s.population for s in settings.specs},
            status=status,
            reason=reason,
        )
        print(f"\nMLflow run {run_id} ({status}; experiment {settings.tracking_experiment!r})")
        mlflow_run = {"run_id": run_id, "url": tracking.ui_link(settings.tracking_uri, run_id)}
        split.lap("MLflow")
    if live is not None and page is not None:
        live.end(status, mlflow_run, standings)
        close_live_page(page, settings)
        split.lap("live page")
    if not in_process:
        runner.disconnect()
        split.lap("Ray shutdown")
    print(f"\n{split.line()} (of which the tournaments themselves {outcome.play_s:.1f} s)")
    if not outcome.results:
        return 1
    return 130 if outcome.interrupted else (2 if outcome.failed else 0)


def open_live_page(settings: Settings, title: str) -> tuple[LivePage | None, LiveReport | None]:
    """Start the live page (``live=true``) and announce the run on it; a port in use is said
    plainly and the run goes on without the page."""
    if settings.live is None:
        return None, None
    from arena_rl.live.hub import Hub
    from arena_rl.live.messages import run_message
    from arena_rl.live.page import PortInUseError, start_page

    hub = Hub()
    try:
        page = start_page(hub, settings.live.host, settings.live.port)
    except PortInUseError as exc:
        print(
            f"warning: {exc}; the run goes on without it (live_page.port=0 takes any free port)",
            file=sys.stderr,
        )
        return None, None
    spec, agents = settings.specs[0], list(settings.agents)
    scenario = spec.scenario
    hub.publish(
        [
            run_message(
                "tournament",
                title,
                agents,
                [CONTROL_ARM, *agents],
                scenario.metrics,
                scenario.knobs.keys,
                len(settings.specs),
                spec.days,
            )
        ]
    )
    print(f"live page: {page.url}", flush=True)
    return page, LiveReport(hub, len(settings.specs), settings.seed)


def close_live_page(page: LivePage, settings: Settings) -> None:
    """Keep the page up ``live_page.linger_s`` seconds (Ctrl-C ends that early), then stop."""
    assert settings.live is not None
    if settings.live.linger_s > 0:
        print(
            f"live page: still at {page.url} for {settings.live.linger_s:g} s (Ctrl-C ends it)",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(settings.live.linger_s)
    page.stop()


def draw_process_views(out_dir: Path, indices: list[int], spec: TournamentSpec) -> None:
    """Each finished tournament's process views, into ``<its log folder>/process_views/`` (so
    they are logged with it)."""
    from arena_rl.eventlog.process_views import MARKS, JourneyMarks, write_process_views

    marks = MARKS.get(spec.scenario.plugin, JourneyMarks())
    store = runner.ResultStore(out_dir)
    for index in indices:
        folder = store.eventlog(index)
        if folder.is_dir():
            write_process_views(folder, folder / "process_views", marks)
    print(f"process views of {len(indices)} tournament(s) in {out_dir / runner.EVENTLOG_DIR}")


def persona_estimate(settings: Settings) -> str:
    """What the persona users may cost, said before any model call."""
    config = settings.personas
    assert config is not None
    spec = settings.specs[0]
    arms = len(spec.agents) + 1
    calls = config.calls(arms, spec.days) * len(settings.specs)
    worst = config.estimate_usd(arms, spec.days) * len(settings.specs)
    cap = config.llm.budget_usd
    budget = "no budget cap" if cap is None else f"budget ${cap:g} per tournament"
    shown = "unknown (the model has no price)" if worst != worst else f"${worst:.4f}"
    return (
        f"persona users: {config.per_arm} per arm from {config.file!r} on {config.llm.backend}; "
        f"at most {calls:,} model calls (cached answers are free), worst-case cost {shown}; "
        f"{budget}"
    )


def run_status(outcome: runner.RunOutcome, planned: int) -> tuple[str, str]:
    """How the run ended, as MLflow says it ("FINISHED", "FAILED", "KILLED"), and why."""
    done = len(outcome.results)
    if outcome.interrupted:
        return "KILLED", f"interrupted after {done} of {planned} tournaments; rerun to resume"
    if outcome.failed:
        first = next(iter(outcome.failed.values())).strip().splitlines()[-1][:300]
        return "FAILED", f"{len(outcome.failed)} of {planned} tournaments failed, e.g.: {first}"
    return "FINISHED", ""


def run_name(settings: Settings, out_dir: Path) -> str:
    """What ran, for the MLflow parent run: agents, scenario, population, output folder."""
    spec = settings.specs[0]
    agents = ",".join(settings.agents)
    population = spec.population.name.split("/")[0]  # a prior's draws are <prior>/<k>
    return f"{agents} · {spec.scenario.name}/{population} · {out_dir.name}"


def measured_on(settings: Settings) -> str:
    """Which populations the results were measured on, in one line."""
    names = list(dict.fromkeys(s.population.name for s in settings.specs))
    if len(names) == 1 and "/" not in names[0]:
        return f"population: {names[0]}"
    prior = names[0].split("/")[0]
    return (
        f"populations: {len(names)} drawn from the prior {prior!r} ({names[0]} to {names[-1]}; "
        "each one's spec is in populations.json)"
    )


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    faulthandler.enable()  # a native crash (a model's library, say) prints where, not nothing
    split = Split()
    try:
        settings = settings_from(cfg)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    split.phases["ground truth"] = settings.truth_s
    split.lap("checks")
    split.phases["checks"] -= settings.truth_s
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    code = run(settings, out_dir, split)
    if code:
        sys.exit(code)
