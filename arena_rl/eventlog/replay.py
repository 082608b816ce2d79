"""Replay a policy over logged decision points, with no way to see the future.

At each logged decision point the policy is asked what it would have done, given what the
logged agent was given (the observation, its arm's economy) and nothing that happened later.
The guarantee is structural: the policy is built and runs in its own process
(:func:`multiprocessing` "spawn"), which receives, before each decision point, only the decision
rows strictly before it (with a reward only once its window has closed), and never the log, its
path or anything else of the parent's. Whatever it tries inside that process — its attributes,
closures, stack frames, ``gc``, the files it has open — it can find nothing later, because nothing
later is there. A policy that raises, crashes or answers junk is recorded, not trusted.

What comes back per decision point: the policy's action, whether it agrees with the logged one,
and whether the guardrails would have let it through (a violation says why); with the logged
probabilities and rewards, that is what off-policy evaluation weighs.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pyarrow as pa

from arena_rl.agent import Agent, VariantInfo
from arena_rl.core.guardrails import GuardrailResult, RejectionCode
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.sandbox import AgentSandbox

STARTUP_S = 300.0
"""How long the policy's process may take to start and answer its first question."""

PolicyFactory = Callable[[], Agent]
"""Builds the policy inside its own process (picklable: a class, or a functools.partial)."""

_KNOWN: list[dict[str, Any]] = []
"""In the policy's process: the decision rows known so far (see :func:`history`)."""


def history() -> list[dict[str, Any]]:
    """Inside a replayed policy: the logged decision rows strictly before the current decision
    point, oldest first (a reward is None until its window has closed). A copy: nothing a policy
    does to it changes the replay."""
    return [dict(row) for row in _KNOWN]


@dataclass(frozen=True)
class ReplayedDecision:
    """The policy's answer at one logged decision point."""

    row: int
    """Index of the decision point in the logged table."""
    tournament: int
    day: int
    arm: str
    action: dict[str, float] | None
    """What the policy asked for (None: hold)."""
    probability: float
    """The policy's stated probability of that action."""
    reasoning: str
    """The policy's words for it."""
    agrees: bool
    """Whether it is the logged action: the same values, or the same economy once through the
    guardrails (a hold and a request for today's values agree; so do two requests clamped to
    the same values)."""
    violation: str | None
    """Why the guardrails would not have let it through as asked (or how the policy failed)."""


@dataclass(frozen=True)
class ReplayResult:
    """Every decision point's replay, in the logged table's order, and the policy's faults."""

    decisions: list[ReplayedDecision]
    faults: list[str]
    seconds: float

    @property
    def agreement(self) -> float:
        return float(np.mean([d.agrees for d in self.decisions])) if self.decisions else math.nan

    @property
    def violations(self) -> int:
        return sum(d.violation is not None for d in self.decisions)

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(
            [
                {
                    "row": d.row, "tournament": d.tournament, "day": d.day, "arm": d.arm,
                    "action": None if d.action is None else json.dumps(d.action),
                    "probability": d.probability, "reasoning": d.reasoning, "agrees": d.agrees,
                    "violation": d.violation,
                }
                for d in self.decisions
            ]
        )  # fmt: skip


class ReplayError(RuntimeError):
    """The policy's process died or stopped answering (named with the decision point)."""


def signals_of(row: Mapping[str, Any], metrics: Sequence[str]) -> Signals:
    """The observation a logged decision row records, as the agent was given it."""
    return Signals(
        enrolled=int(row["obs.enrolled"]),
        active_today=int(row["obs.active_today"]),
        active_7d=int(row["obs.active_7d"]),
        total_actions=int(row["obs.total_actions"]),
        experiment_days=int(row["obs.experiment_days"]),
        metrics={
            m: MetricValue(
                row[f"obs.{m}.value"],
                row[f"obs.{m}.std_dev"],
                int(row[f"obs.{m}.sample_size"]),
                row[f"obs.{m}.confidence"],
            )
            for m in metrics
        },
    )


def _columns(table: pa.Table, prefix: str, suffix: str = "") -> list[str]:
    """The names between ``prefix`` and ``suffix`` of the table's columns, in order."""
    names = []
    for column in table.column_names:
        if column.startswith(prefix) and column.endswith(suffix):
            names.append(column[len(prefix) : len(column) - len(suffix)])
    return names


def replay(
    decisions: pa.Table,
    policy: PolicyFactory,
    info: VariantInfo,
    *,
    seed: int = 0,
    timeout_s: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Ask ``policy`` at every logged decision point what it would have done.

    Each arm's decision points form one run of its own copy of the policy (built and reset,
    with ``seed``, at the arm's first); the arms are replayed side by side, day by day, so the
    policy's process only ever holds the rows of every arm strictly before the current day.
    Several tournaments' decision points (a ``tournament`` column with several values) are
    replayed in index order, as if each ran after the one before: a decision point also sees
    the earlier tournaments' rows, and never a later one's.

    Args:
        decisions: a log's decision points (``decisions.parquet``).
        policy: builds the policy in its own process.
        info: what the policy is told of its variant at reset (scenario, knobs, horizon).
        seed: seeds the policy's generator at each reset.
        timeout_s: a decision point the policy does not answer within this is an error.
        progress: called with (done, total) as decision points are answered.
    """
    rows = decisions.to_pylist()
    metrics = _columns(decisions, "obs.", ".value")
    knobs = _columns(decisions, "economy.")

    def when(i: int) -> tuple[int, int]:
        return rows[i]["tournament"], rows[i]["day"]

    order = sorted(range(len(rows)), key=lambda i: (*when(i), rows[i]["arm"]))
    past = [rows[i] for i in order]
    times = [when(i) for i in order]
    answers: dict[int, ReplayedDecision] = {}
    started = time.perf_counter()
    with PolicyProcess(_serve, (policy, info, seed), timeout_s) as child:
        for done, i in enumerate(order):
            row = rows[i]
            config = {k: row[f"economy.{k}"] for k in knobs}
            where = (
                f"decision point {i} (tournament {row['tournament']}, arm {row['arm']!r}, "
                f"day {row['day']})"
            )
            before = bisect.bisect_left(times, when(i))  # rows strictly before its day
            run = (row["tournament"], row["arm"])
            now = when(i)

            def closed(r: Mapping[str, Any], now: tuple[int, int] = now) -> bool:
                return (r["tournament"], r["day"] + r["reward_days"]) <= now

            payload = (signals_of(row, metrics), config)
            action, probability, reasoning = child.ask(run, past, before, closed, payload, where)
            violation = _violation(action, row, knobs)
            agrees = _same(action, logged_action(row)) or (
                economy_after(row, action, knobs) == economy_after(row, logged_action(row), knobs)
            )
            if action is not None:
                child.tell(run, _answer(action, agrees, violation, row, config))
            answers[i] = ReplayedDecision(
                row=i, tournament=row["tournament"], day=row["day"], arm=row["arm"],
                action=action, probability=probability, reasoning=reasoning,
                agrees=agrees, violation=violation,
            )  # fmt: skip
            if progress is not None:
                progress(done + 1, len(rows))
        faults = child.faults()
    return ReplayResult(
        [answers[i] for i in range(len(rows))], faults, time.perf_counter() - started
    )


def _answer(
    action: Mapping[str, float],
    agrees: bool,
    violation: str | None,
    row: Mapping[str, Any],
    config: Mapping[str, float],
) -> GuardrailResult:
    """The guardrails' answer the policy is told: the logged one where it asked what was
    logged; otherwise what they would have said as far as the log shows (refused, or accepted
    with values clamped into the allowed window). The arm's economy stays the logged one."""
    if agrees:
        accepted = row["outcome"] in ("applied", "clamped")
        code = row["rejection_code"]
    else:
        accepted = violation is None or violation.startswith("clamped")
        code = None if accepted else (violation or "").split(": ")[1].split(" ")[0]
    applied = None
    if accepted:
        applied = dict(config)
        for knob, value in action.items():
            if f"allowed.{knob}.low" in row and isinstance(value, int | float):
                applied[knob] = min(
                    max(value, row[f"allowed.{knob}.low"]), row[f"allowed.{knob}.high"]
                )
    detail = "as logged" if agrees else (violation or "accepted")
    rejection = None if code is None else RejectionCode(code)
    return GuardrailResult(accepted, applied, {}, rejection, detail, None, "replay")


def economy_after(
    row: Mapping[str, Any], action: Mapping[str, Any] | None, knobs: Sequence[str]
) -> list[float]:
    """The arm's knobs once ``action`` has passed the guardrails at this decision point: held,
    refused (the economy stays), or applied inside the allowed window."""
    economy = [float(row[f"economy.{k}"]) for k in knobs]
    if action is None or row["allowed_refusal"] is not None:
        return economy
    for i, knob in enumerate(knobs):
        value = action.get(knob)
        if isinstance(value, int | float) and math.isfinite(value):
            low, high = row[f"allowed.{knob}.low"], row[f"allowed.{knob}.high"]
            economy[i] = float(min(max(value, low), high))
    return economy


def logged_action(row: Mapping[str, Any]) -> dict[str, float] | None:
    """The action a logged decision row records (None: a hold)."""
    return None if row["action"] is None else json.loads(row["action"])


def _same(a: Mapping[str, float] | None, b: Mapping[str, float] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if set(a) != set(b):
        return False
    try:
        return all(math.isclose(float(a[k]), float(b[k]), rel_tol=1e-9, abs_tol=1e-12) for k in a)
    except (TypeError, ValueError):
        return False


def _violation(
    action: Mapping[str, float] | None, row: Mapping[str, Any], knobs: Sequence[str]
) -> str | None:
    """Why the guardrails would not have taken ``action`` as asked at this decision point."""
    if action is None:
        return None
    if row["allowed_refusal"] is not None:
        return f"rejected: {row['allowed_refusal']} (no update was accepted then)"
    unknown = sorted(set(action) - set(knobs))
    if unknown:
        return f"rejected: INVALID_UPDATE (no knob {', '.join(map(repr, unknown))})"
    outside = []
    for knob, value in action.items():
        low, high = row[f"allowed.{knob}.low"], row[f"allowed.{knob}.high"]
        if not isinstance(value, int | float) or not low - 1e-9 <= value <= high + 1e-9:
            outside.append(f"{knob}={value!r} outside [{low:g}, {high:g}]")
    return f"clamped: {'; '.join(outside)}" if outside else None


class PolicyProcess:
    """A policy's own process, and the only channel to it.

    ``serve(conn, *args)`` runs there (a module-level function: it is found by name); it
    answers each ``("ask", key, new_rows, closed, *payload)`` after adding the new rows to
    what the policy may know (:func:`absorb`). :meth:`ask` sends only rows strictly before the
    decision point, each row's reward only once ``closed(row)`` says its window is over.
    """

    def __init__(self, serve: Callable[..., None], args: tuple[Any, ...], timeout_s: float) -> None:
        self.timeout_s = timeout_s
        context = mp.get_context("spawn")
        self.conn, child_end = context.Pipe()
        self.process = context.Process(
            target=serve, args=(child_end, *args), name="arena-replay-policy", daemon=True
        )
        self.process.start()
        child_end.close()
        self._sent = 0
        self._answered = False
        self._pending: set[int] = set()
        """Positions of rows sent before their reward was known."""

    def __enter__(self) -> PolicyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("stop",))
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()

    def ask(
        self,
        key: Any,
        past: Sequence[Mapping[str, Any]],
        before: int,
        closed: Callable[[Mapping[str, Any]], bool],
        payload: tuple[Any, ...],
        where: str,
    ) -> Any:
        """Send what became known since the last decision point (``past[:before]`` in all, a
        reward only once ``closed(row)``), then ask about this one."""
        new = []
        for position in range(self._sent, before):
            row = dict(past[position])
            if not closed(row):
                row["reward"] = None
                self._pending.add(position)
            new.append(row)
        now_closed = {p: past[p]["reward"] for p in self._pending if closed(past[p])}
        self._pending -= set(now_closed)
        self._sent = max(self._sent, before)
        return self._ask(("ask", key, new, now_closed, *payload), where)

    def tell(self, key: Any, message: Any) -> None:
        """A message for the policy of ``key`` (no reply is awaited)."""
        with contextlib.suppress(OSError):
            self.conn.send(("tell", key, message))

    def faults(self) -> list[str]:
        result: list[str] = self._ask(("faults",), "the end")
        return result

    def _ask(self, message: tuple[Any, ...], where: str) -> Any:
        try:
            self.conn.send(message)
            # the first answer waits for the process to start too (imports; slow on a busy machine)
            limit = self.timeout_s if self._answered else max(self.timeout_s, STARTUP_S)
            if not self.conn.poll(limit):
                raise ReplayError(f"the policy did not answer {where} within {limit:g} s")
            self._answered = True
            kind, payload = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            self.process.join(timeout=1)
            raise ReplayError(
                f"the policy's process died at {where} (exit code {self.process.exitcode}): "
                f"{type(exc).__name__}"
            ) from None
        if kind == "error":
            raise ReplayError(f"the policy failed at {where}: {payload}")
        return payload


def isolate() -> None:
    """In the policy's process: nothing of the parent's to look at, not its folder and not its
    command line (spawn copies the parent's argv, which names the log: ``replay.py log=...``)."""
    os.chdir(tempfile.mkdtemp(prefix="arena-replay-"))
    sys.argv = ["arena-replay-policy"]


def absorb(new: list[dict[str, Any]], closed: Mapping[int, Any]) -> None:
    """In the policy's process: what became known (:func:`history` returns it)."""
    _KNOWN.extend(new)
    for position, reward in closed.items():
        _KNOWN[position]["reward"] = reward


def _serve(conn: Connection, policy: PolicyFactory, info: VariantInfo, seed: int) -> None:
    """The policy's process: a copy of the policy per arm, built at the arm's first decision
    point; answers the parent's requests until told to stop."""
    isolate()
    boxes: dict[tuple[int, str], AgentSandbox] = {}
    for message in requests(conn):
        kind = message[0]
        if kind == "ask":
            _, run, new, closed, signals, config = message
            absorb(new, closed)
            if run not in boxes:
                try:
                    boxes[run] = AgentSandbox(run[1], policy(), info.knobs, timeout_s=None)
                except Exception as exc:
                    conn.send(("error", f"could not build the policy: {type(exc).__name__}: {exc}"))
                    return
                boxes[run].reset(info, np.random.default_rng(seed))
            update, probability = boxes[run].decide(signals, config, signals.experiment_days)
            action = None if update is None else dict(update.overrides)
            reasoning = "" if update is None else update.reasoning
            conn.send(("ok", (action, probability, reasoning)))
        elif kind == "tell":
            _, run, result = message
            boxes[run].on_result(result, len(_KNOWN))
        elif kind == "faults":
            faults = [
                f"tournament {t}, {arm}: {f}" for (t, arm), b in boxes.items() for f in b.faults
            ]
            conn.send(("ok", faults))


def requests(conn: Connection) -> Iterator[tuple[Any, ...]]:
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "stop":
            return
        yield message
