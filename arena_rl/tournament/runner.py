"""Run many tournaments on Ray: completion order, results on disk first, resume, retries.

The unit of work is one whole tournament (~0.1-1 s), never a step: a Ray actor call costs
~1-2 ms here. Each worker is an actor with one CPU that builds every (name, config) agent once
and reuses it, so a heavy resource (a torch policy, an LLM) loads once per worker; agents are
reset with the tournament's seed before each use, so reuse does not change results.

Every finished tournament is written to ``<out_dir>/tournaments/<index:05d>.json`` before the
next one is scheduled; a rerun with the same directory loads those and plays only the rest.
``<out_dir>/experiment.json`` records what decides every result besides its seed (agents,
population, scenario, users, days); a rerun that asks for anything else is refused before any
work, so a directory never mixes two experiments.
Results depend only on each spec's seed, never on the number of workers or the finish order.

``ray.init`` belongs to scripts and test fixtures: call :func:`connect` (or ``ray.init``
yourself) before :func:`run_tournaments`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from collections import Counter, deque
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from ray.exceptions import RayActorError, RayError
from tqdm import tqdm

from arena_rl.agent import Agent
from arena_rl.core.disk_cache import digest
from arena_rl.eventlog.files import to_parquet, write_log
from arena_rl.live.feed import LiveFeed, Send
from arena_rl.live.messages import Message
from arena_rl.live.outbox import Outbox
from arena_rl.tournament.live_report import LiveReport
from arena_rl.tournament.play import (
    AgentFactory,
    TournamentResult,
    TournamentSpec,
    experiment_record,
    play_tournament,
    recorder_for,
)

LIVE_POLL_S = 0.25
"""How often the driver takes the workers' live messages while tournaments run (live page)."""
RESULTS_DIR = "tournaments"
"""Subdirectory of the output directory holding one JSON file per finished tournament."""
FAILED_FILE = "failed.json"
"""Index -> reason for every tournament that failed in the latest run (absent when none)."""
EVENTLOG_DIR = "eventlog"
"""Subdirectory of the output directory holding one event log folder per tournament."""
EXPERIMENT_FILE = "experiment.json"
"""What decides the stored results besides each tournament's seed and pairing."""


class StaleResultsError(ValueError):
    """The output directory holds results of another experiment."""


def _differences(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs, in words: values for settings, names for presets."""
    out = []
    for key in sorted(set(stored) | set(now)):
        before, after = stored.get(key), now.get(key)
        if before == after:
            continue
        if isinstance(before, Mapping) and isinstance(after, Mapping):  # a preset: its name
            before, after = before.get("name"), after.get("name")
            if before == after:
                out.append(f"{key} {before!r} with other settings")
                continue
        out.append(f"{key} {before!r} here, {after!r} now")
    return out


def connect(address: str | None, num_workers: int) -> None:
    """Start or join Ray, once per process (a Hydra multirun calls this per job).

    Args:
        address: "auto" joins the cluster started on this machine by ``ray start --head``;
            "ray://host:port" joins a remote one; None joins a local cluster that
            ``ray start --head`` left running (:func:`running_local_ray`), else starts a private
            local Ray, except in a job sent by ``ray job submit``, which joins its cluster (Ray
            sets ``RAY_ADDRESS`` for the job). Never a bare ``ray.init()``: it may hang joining
            a dead cluster.
        num_workers: the local Ray gets this many CPUs, or every core if there are more, so
            that a later job of a multirun asking for more workers still fits.
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or running_local_ray()
    if address is None:
        cpus = max(num_workers, os.cpu_count() or 1)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False)
    else:
        _token_auth_if_there_is_a_token()
        ray.init(address=address)


def _token_auth_if_there_is_a_token() -> None:
    """Use token auth to join a cluster when a token exists and ``RAY_AUTH_MODE`` is unset.

    ``ray start --head`` turns token auth on by default and saves its token, and a driver
    joining it must be in token mode too, but Ray switches a driver to it only when it starts
    a cluster: without this, the documented ``ray start --head`` then ``tournament.py`` fails
    with "Authentication token is missing". Ray's own switch reads the token where Ray keeps
    it; it is private, so a Ray without it leaves the choice to ``RAY_AUTH_MODE``."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def disconnect() -> None:
    """Leave Ray: a private local Ray is shut down; a cluster this process joined stays up."""
    ray.shutdown()


LOCAL_CLUSTER_FILE = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
"""Where ``ray start --head`` writes the address of the cluster it started."""


def running_local_ray() -> str | None:
    """The address of a Ray cluster started on this machine by ``ray start --head`` that is
    still up (its address answers), else None. Attaching to one skips Ray's start-up and
    shutdown (several seconds) on every command; a stale address is never joined, since a
    bare join of a dead cluster can hang."""
    try:
        address = LOCAL_CLUSTER_FILE.read_text().strip()
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=0.5):
            return address
    except (OSError, ValueError):
        return None


class CachedBuilder:
    """An agent factory that builds each (name, config) once and then hands out the same agent.

    Safe because ``run_experiment`` resets every agent with the tournament's own generator
    before it plays, and one worker plays one tournament at a time.
    """

    def __init__(self, build: AgentFactory) -> None:
        self.build = build
        self._agents: dict[tuple[str, str], Agent] = {}

    def __call__(self, name: str, config: Mapping[str, Any]) -> Agent:
        key = (name, json.dumps(config, sort_keys=True, default=str))
        if key not in self._agents:
            self._agents[key] = self.build(name, config)
        return self._agents[key]


@dataclass(frozen=True)
class Played:
    """What one attempt at a tournament produced: its result as JSON text, or why it failed."""

    index: int
    text: str | None
    """``TournamentResult.to_json()``: written to disk as is, so a resumed run reads the same."""
    error: str | None
    seconds: float
    """Time inside ``play_tournament`` (0 when the worker died)."""
    eventlog: dict[str, pa.Table] | None = None
    """The tournament's event log (table name -> table), when the spec asks. The driver,
    which mostly waits on the workers, encodes it as Parquet when it stores it."""
    live: list[Message] | None = None
    """The tournament's last live messages, not yet taken by the driver (Ray only)."""


def play_one(
    spec: TournamentSpec, build: AgentFactory, *, with_regret: bool = True, send: Send | None = None
) -> Played:
    """Play ``spec``; an exception becomes a failure carrying its traceback (it would fail
    again on retry: tournaments are deterministic). ``send``: where its live messages go
    (None: no live page)."""
    started = time.perf_counter()
    recorder = recorder_for(spec)
    feed = None if send is None else LiveFeed(send, spec.index)
    try:
        subscribers = [x for x in (recorder, feed) if x is not None]
        result = play_tournament(spec, build, with_regret=with_regret, subscribers=subscribers)
        eventlog = None if recorder is None else recorder.tables()
        if feed is not None:
            feed.flush()
    except Exception:
        return Played(spec.index, None, traceback.format_exc(), time.perf_counter() - started)
    return Played(spec.index, result.to_json(), None, time.perf_counter() - started, eventlog)


@ray.remote(num_cpus=1)
class TournamentWorker:
    """A Ray actor that plays whole tournaments, keeping built agents between them."""

    def __init__(self, build: AgentFactory, with_regret: bool = True, live: bool = False) -> None:
        self._build = CachedBuilder(build)
        self._with_regret = with_regret
        self._outbox = Outbox() if live else None
        """The live page's messages, until the driver takes them (None: no live page)."""

    def ready(self) -> bool:
        """Returns once the actor is constructed: surfaces a factory that cannot unpickle."""
        return True

    def play(self, spec: TournamentSpec) -> Played:
        if self._outbox is None:
            return play_one(spec, self._build, with_regret=self._with_regret)
        played = play_one(spec, self._build, with_regret=self._with_regret, send=self._outbox.put)
        return replace(played, live=self._outbox.take())  # the rest travels with the result

    def take_live(self) -> list[Message]:
        """The live messages so far (called by the driver while :meth:`play` runs: a live
        worker runs two calls at once)."""
        return [] if self._outbox is None else self._outbox.take()


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_tournaments` achieved; ``results`` include the resumed ones."""

    results: list[TournamentResult]
    """Sorted by index."""
    failed: dict[int, str]
    """Index -> reason (traceback text, or how often its worker died)."""
    skipped: int
    """Tournaments loaded from an earlier run instead of played."""
    interrupted: bool
    """Ctrl-C stopped the run; ``results`` holds what finished (all of it is on disk)."""
    wall_s: float
    play_s: float = 0.0
    """Seconds spent inside ``play_tournament`` by this run, summed over workers."""
    retries: dict[int, int] = field(default_factory=dict)
    """Index -> times it was resubmitted after its worker died (only those retried)."""
    startup_s: float = 0.0
    """Seconds until the first workers were up (process start, imports); 0 in process."""


@dataclass
class _WorkerLog:
    """What the Ray loop reports besides results, filled in as it goes."""

    retries: dict[int, int] = field(default_factory=dict)
    startup_s: float = 0.0


class ResultStore:
    """One JSON file per finished tournament under ``<out_dir>/tournaments``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.dir = out_dir / RESULTS_DIR

    def path(self, index: int) -> Path:
        return self.dir / f"{index:05d}.json"

    def eventlog(self, index: int) -> Path:
        """The tournament's event log folder (``<out_dir>/eventlog/<index>``)."""
        return self.out_dir / EVENTLOG_DIR / f"{index:05d}"

    def write(self, index: int, text: str, eventlog: Mapping[str, pa.Table] | None = None) -> None:
        """Atomically: a Ctrl-C or crash leaves either the whole file or none. The event log
        is written first, so a stored result always has the log it was played with."""
        if eventlog is not None:
            write_log(self.eventlog(index), to_parquet(eventlog))
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(index).with_suffix(".json.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path(index))

    def claim(self, specs: Sequence[TournamentSpec]) -> None:
        """Make sure this directory holds (or will hold) only this experiment's results: record
        it on first use; refuse, naming what differs, a directory of another experiment."""
        if not specs:
            return
        now = {k: v for k, v in experiment_record(specs[0]).items() if k != "agents"}
        path = self.out_dir / EXPERIMENT_FILE
        if path.exists():
            stored = json.loads(path.read_text())
            if stored != now:
                raise StaleResultsError(
                    f"{self.out_dir} holds the results of another experiment "
                    f"({'; '.join(_differences(stored, now))}). Use a fresh output directory "
                    f"(hydra.run.dir=...), or delete {self.dir} and {path} to start over."
                )
            return
        if self.dir.exists() and any(self.dir.glob("*.json")):
            raise StaleResultsError(
                f"{self.dir} holds results with no record of the experiment that made them "
                f"(written before {EXPERIMENT_FILE} existed). Use a fresh output directory, "
                "or delete it to start over."
            )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(now, indent=2, sort_keys=True))

    def load(self, specs: Sequence[TournamentSpec]) -> dict[int, TournamentResult]:
        """Results already stored for ``specs``; one from another run's specs is an error."""
        self.claim(specs)
        found: dict[int, TournamentResult] = {}
        for spec in specs:
            path = self.path(spec.index)
            if not path.exists():
                continue
            result = TournamentResult.from_json(path.read_text())
            if result.spec_digest != digest(experiment_record(spec)):
                raise StaleResultsError(
                    f"{path} was played with other agents or agent settings than tournament "
                    f"{spec.index} asks for now ({', '.join(spec.agents)}). Use a fresh output "
                    f"directory (hydra.run.dir=...), or delete {self.dir} to start over."
                )
            if (result.seed, result.pairing) != (spec.seed, spec.pairing):
                raise ValueError(
                    f"{path} holds another tournament (seed {result.seed}, {result.pairing!r}) "
                    f"than spec {spec.index} (seed {spec.seed}, {spec.pairing!r}): resume only "
                    "with the same seed and agents, or use a fresh output directory"
                )
            found[spec.index] = result
        return found

    def write_failed(self, failed: Mapping[int, str]) -> None:
        """Record this run's failures; drop a stale file once everything has succeeded."""
        path = self.out_dir / FAILED_FILE
        if failed:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({str(i): failed[i] for i in sorted(failed)}, indent=2))
        else:
            path.unlink(missing_ok=True)


def run_tournaments(
    specs: Sequence[TournamentSpec],
    out_dir: Path,
    build: AgentFactory,
    *,
    num_workers: int,
    max_retries: int = 2,
    progress: bool = True,
    in_process: bool = False,
    with_regret: bool = True,
    live: LiveReport | None = None,
) -> RunOutcome:
    """Play every spec not yet stored in ``out_dir``, at most ``num_workers`` at a time.

    Args:
        specs: tournaments with distinct indices.
        out_dir: the run's output directory; rerunning with the same one resumes.
        build: picklable ``build(name, config) -> Agent``, shipped once to each worker.
        num_workers: worker actors (one CPU each); Ray must already be initialised.
        max_retries: resubmissions of a tournament whose worker process died, each on a fresh
            actor; a tournament that raises is not retried (it would raise again).
        progress: a progress bar on stderr (also off when stderr is not a terminal).
        in_process: play here, one after another, without Ray (debugging, determinism checks).
        with_regret: compute regret vs the ground-truth plan (a one-off search of a few
            seconds per worker process and population).
        live: the live page's report: the tournaments' messages go to its hub (on Ray, the
            driver takes them from the workers every ``LIVE_POLL_S`` and with each result),
            and it hears of each finished tournament. It never changes a result.

    Returns:
        The outcome. Ctrl-C does not raise: in-flight work is cancelled and the outcome says
        ``interrupted=True``, with every finished tournament in it and on disk.
    """
    started = time.perf_counter()
    _check_distinct(specs)
    store = ResultStore(out_dir)
    done = store.load(specs)
    skipped = len(done)
    pending = [spec for spec in specs if spec.index not in done]
    finished: dict[int, str] = {}
    failed: dict[int, str] = {}
    log = _WorkerLog()
    play_s = 0.0
    interrupted = False
    bar = tqdm(
        total=len(specs),
        initial=skipped,
        unit="tournament",
        disable=not (progress and sys.stderr.isatty()),
    )
    publish = None if live is None else live.hub.publish
    if live is not None:
        live.resumed(done.values())
    if in_process:
        attempts = _play_in_process(pending, build, with_regret, publish)
    else:
        attempts = _play_on_ray(pending, build, num_workers, max_retries, with_regret, log, publish)
    try:
        with contextlib.closing(attempts):  # closing kills the actors
            for played in attempts:  # the next one is scheduled only after this body ran
                if played.text is not None:
                    store.write(played.index, played.text, played.eventlog)
                    finished[played.index] = played.text  # parsed later, off the critical path
                else:
                    failed[played.index] = played.error or "unknown failure"
                if live is not None:
                    live.hub.publish(played.live or [])
                    text = played.text
                    live.finished(None if text is None else TournamentResult.from_json(text))
                play_s += played.seconds
                bar.update(1)
                if failed:
                    bar.set_postfix(failed=len(failed))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    store.write_failed(failed)
    parsed = {} if live is None else live.results  # the live report parsed them already
    done |= {i: parsed.get(i) or TournamentResult.from_json(text) for i, text in finished.items()}
    return RunOutcome(
        results=[done[i] for i in sorted(done)],
        failed=failed,
        skipped=skipped,
        interrupted=interrupted,
        wall_s=time.perf_counter() - started,
        play_s=play_s,
        retries=log.retries,
        startup_s=log.startup_s,
    )


def _check_distinct(specs: Sequence[TournamentSpec]) -> None:
    indices = [spec.index for spec in specs]
    if len(set(indices)) != len(indices):
        raise ValueError("tournament specs must have distinct indices (one file each)")


def _play_in_process(
    pending: Sequence[TournamentSpec], build: AgentFactory, with_regret: bool, send: Send | None
) -> Generator[Played, None, None]:
    builder = CachedBuilder(build)
    for spec in pending:
        yield play_one(spec, builder, with_regret=with_regret, send=send)


def _play_on_ray(
    pending: Sequence[TournamentSpec],
    build: AgentFactory,
    num_workers: int,
    max_retries: int,
    with_regret: bool,
    log: _WorkerLog,
    publish: Send | None = None,
) -> Generator[Played, None, None]:
    """Yield attempts in completion order, one tournament in flight per worker.

    With ``publish`` (a live page), the workers' live messages are taken every
    ``LIVE_POLL_S`` while tournaments run and handed to it, in the order each worker made them.

    A worker that dies is replaced by a fresh actor and its tournament resubmitted (counted in
    ``log.retries``) until ``max_retries`` is spent; then the tournament is yielded as failed.
    Each tournament is yielded exactly once. Closing the generator kills the workers.
    """
    if not pending:
        return
    n_workers = min(num_workers, len(pending))
    _check_capacity(n_workers)
    started = time.perf_counter()
    build_ref = ray.put(build)
    queue = deque(pending)
    workers = [_start_worker(build_ref, with_regret, publish is not None) for _ in range(n_workers)]
    in_flight: dict[Any, tuple[Any, TournamentSpec]] = {}
    deaths: Counter[int] = Counter()
    try:
        _wait_ready(workers)
        log.startup_s = time.perf_counter() - started
        for worker in workers:
            spec = queue.popleft()
            in_flight[worker.play.remote(spec)] = (worker, spec)
        while in_flight:
            wait_s = None if publish is None else LIVE_POLL_S
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=wait_s)
            if not ready:
                assert publish is not None
                _take_live(workers, publish)
                continue
            [ref] = ready
            worker, spec = in_flight.pop(ref)
            try:
                played: Played = ray.get(ref)
            except RayActorError as exc:
                workers.remove(worker)
                worker = None  # dead: a fresh actor replaces it if there is work left
                deaths[spec.index] += 1
                if deaths[spec.index] <= max_retries:
                    log.retries[spec.index] = deaths[spec.index]
                    queue.appendleft(spec)
                else:
                    yield Played(spec.index, None, _died(max_retries, exc), 0.0)
            except RayError as exc:  # not a worker death: report it, do not loop on it
                yield Played(spec.index, None, f"{type(exc).__name__}: {exc}", 0.0)
            else:
                yield played
            if queue:
                if worker is None:
                    worker = _start_worker(build_ref, with_regret, publish is not None)
                    workers.append(worker)
                spec = queue.popleft()
                in_flight[worker.play.remote(spec)] = (worker, spec)
    finally:
        for worker in workers:
            ray.kill(worker)


def _check_capacity(n_workers: int) -> None:
    """Workers need a CPU each: with fewer in the cluster they would wait forever, silently."""
    if n_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {n_workers}")
    cpus = ray.cluster_resources().get("CPU", 0.0)
    if cpus < n_workers:
        raise ValueError(
            f"num_workers={n_workers} needs {n_workers} CPUs but the Ray cluster has {cpus:g}"
        )


def _start_worker(build_ref: Any, with_regret: bool, live: bool) -> Any:
    # ray.remote's class decorator is not visible to mypy: .options is added at run time
    actor = TournamentWorker.options(max_concurrency=2 if live else 1)  # type: ignore[attr-defined]
    return actor.remote(build_ref, with_regret, live)


def _take_live(workers: Sequence[Any], publish: Send) -> None:
    """Hand on what every worker's outbox holds; a dead worker's loss shows when its
    tournament's result does not come."""
    for ref in [worker.take_live.remote() for worker in workers]:
        try:
            publish(ray.get(ref))
        except RayError:
            continue


def _wait_ready(workers: Sequence[Any]) -> None:
    """Fail fast when workers cannot start (e.g. the factory does not unpickle there),
    instead of retrying every tournament on actors that can never run it."""
    try:
        ray.get([worker.ready.remote() for worker in workers])
    except RayActorError as exc:
        raise RuntimeError(f"tournament workers failed to start: {exc}") from exc


def _died(max_retries: int, exc: BaseException) -> str:
    last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"worker died {max_retries + 1} time(s) playing it; last: {type(exc).__name__}: {last}"


__all__ = [
    "EVENTLOG_DIR",
    "FAILED_FILE",
    "RESULTS_DIR",
    "CachedBuilder",
    "Played",
    "ResultStore",
    "RunOutcome",
    "TournamentWorker",
    "connect",
    "play_one",
    "run_tournaments",
]
