"""Process views of one tournament's user journeys, per arm: how users move between the
scenario's user-level events, which journeys churned and retained users take, and how soon
users reach their first 7-day streak.

The log is flattened on the object type ``user`` (each user's events, in time order, are one
case: what ``pm4py.ocel_flattening(ocel, "user")`` gives), column-wise with Arrow. The
directly-follows graph is pm4py's (``pm4py.discover_dfg``); it is drawn with matplotlib, since
pm4py's own drawing needs the Graphviz binary. pm4py is AGPL and heavy: it comes with the
``process`` extra and is imported only inside the functions that need it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from arena_rl.eventlog import schema as s
from arena_rl.eventlog.ocel import LogSource, as_text, load_tables

ENROLLED, STREAK, CHURNED = "user enrolled", "7-day streak", "churned"


@dataclass(frozen=True)
class JourneyMarks:
    """The user events the views time and group by: a journey's ``start``, the ``goal`` whose
    first occurrence is timed from it, and the event that marks a user as ``churned``. The
    defaults are the gamification scenario's; another scenario names its own (pricing:
    ``prospect arrived``, ``subscribed``, ``lost``)."""

    start: str = ENROLLED
    goal: str = STREAK
    churned: str = CHURNED


MARKS = {
    "gamification": JourneyMarks(),
    "pricing": JourneyMarks("prospect arrived", "subscribed", "lost"),
}
"""Each shipped scenario plugin's marks (a tournament with ``eventlog.process_views=true``)."""

CASE, ACTIVITY, TIMESTAMP = "case:concept:name", "concept:name", "time:timestamp"
"""pm4py's names for a flat log's columns."""

RETAINED = "retained"
NONE = "(no events)"
SEPARATOR = " > "


def require_pm4py() -> ModuleType:
    """pm4py, or an error that says how to get it."""
    try:
        import pm4py
    except ImportError as error:
        raise ImportError(
            "process views need pm4py, which comes with the process extra: "
            "pip install 'arena_rl[process]'"
        ) from error
    return pm4py


# ---- the users' journeys ------------------------------------------------------------------


def user_journeys(tables: Mapping[str, pa.Table]) -> pa.Table:
    """The log flattened on users: one row per (user, event linked to it) with the user's id,
    its arm (from the user object), the event's type, time and id, in each user's time order."""
    objects = tables["objects"]
    users = objects.filter(pc.equal(as_text(objects["ocel_type"]), s.USER))
    users = pa.table({"user": as_text(users["ocel_id"]), "arm": as_text(users["arm"])})
    links = tables["event_objects"]
    links = pa.table(
        {"event": as_text(links["ocel_event_id"]), "user": as_text(links["ocel_object_id"])}
    )
    events = tables["events"]
    events = pa.table(
        {"event": as_text(events["ocel_id"]), "activity": as_text(events["ocel_type"]),
         "time": events["ocel_time"], "number": pa.array(np.arange(events.num_rows))}
    )  # fmt: skip
    rows = links.join(users, "user", join_type="inner").join(events, "event", join_type="inner")
    order = [("user", "ascending"), ("time", "ascending"), ("number", "ascending")]
    return rows.sort_by(order).select(["user", "arm", "activity", "time", "event"])


def arms(tables: Mapping[str, pa.Table]) -> list[str]:
    """The arms that have users in the log, in the order their users appear."""
    objects = tables["objects"]
    users = objects.filter(pc.equal(as_text(objects["ocel_type"]), s.USER))
    return [str(a) for a in pc.unique(as_text(users["arm"])).to_pylist()]


def users_of(tables: Mapping[str, pa.Table], arm: str) -> pa.Array:
    """The ids of the arm's user objects."""
    objects = tables["objects"]
    kinds, owners = as_text(objects["ocel_type"]), as_text(objects["arm"])
    mine = pc.and_(pc.equal(kinds, s.USER), pc.equal(owners, arm))
    return as_text(objects["ocel_id"]).filter(mine).combine_chunks()


def activity_order(journeys: pa.Table) -> list[str]:
    """Activities in the order they happen within a day (users' events of a kind are timed
    at the same minute each day), then by name: a reading order for the graph."""
    if journeys.num_rows == 0:
        return []
    micros = journeys["time"].cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
    seconds = micros // 1_000_000 % 86_400
    table = pa.table({"activity": journeys["activity"], "second": seconds})
    first = table.group_by("activity", use_threads=False).aggregate([("second", "min")])
    ranked = sorted(
        zip(first["second_min"].to_pylist(), first["activity"].to_pylist(), strict=True)
    )
    return [str(activity) for _, activity in ranked]


# ---- directly-follows graph ---------------------------------------------------------------


def discover_dfg(
    journeys: pa.Table,
) -> tuple[dict[tuple[str, str], int], dict[str, int], dict[str, int]]:
    """pm4py's directly-follows graph of these journeys: (edges with counts, start
    activities, end activities)."""
    pm4py = require_pm4py()
    if journeys.num_rows == 0:
        return {}, {}, {}
    frame = _flat_frame(journeys)
    edges, starts, ends = pm4py.discover_dfg(
        frame, activity_key=ACTIVITY, timestamp_key=TIMESTAMP, case_id_key=CASE
    )
    return (
        {(str(a), str(b)): int(n) for (a, b), n in edges.items()},
        {str(a): int(n) for a, n in starts.items()},
        {str(a): int(n) for a, n in ends.items()},
    )


def _flat_frame(journeys: pa.Table) -> Any:
    """The journeys as the pandas frame pm4py reads, with its column names (pandas comes with
    pm4py)."""
    renamed = journeys.select(["user", "activity", "time"]).rename_columns(
        [CASE, ACTIVITY, TIMESTAMP]
    )
    return renamed.to_pandas()


def dfg_table(edges: Mapping[tuple[str, str], int]) -> pa.Table:
    """The graph's edges as rows (source, target, count), the most frequent first."""
    ranked = sorted(edges.items(), key=lambda item: (-item[1], item[0]))
    return pa.table(
        {"source": [a for (a, _), _ in ranked], "target": [b for (_, b), _ in ranked],
         "count": pa.array([n for _, n in ranked], pa.int64())}
    )  # fmt: skip


def draw_dfg(
    edges: Mapping[tuple[str, str], int],
    order: Sequence[str],
    starts: Mapping[str, int],
    ends: Mapping[str, int],
    title: str,
) -> Figure:
    """The graph as an arc diagram: activities as boxes left to right in ``order``, arcs
    forward above and back below, each as wide as its share of the busiest and labelled
    with its count; a box notes how many journeys start and end there."""
    spacing, half_width, half_height = 2.0, 0.8, 0.35
    where = {activity: i * spacing for i, activity in enumerate(order)}
    heaviest = max(edges.values(), default=1)
    reach = max((abs(where[b] - where[a]) for a, b in edges), default=spacing)
    right, top = max(where.values(), default=0.0) + spacing, 0.3 * reach + 1.0
    inches = 0.8  # per unit on both axes: arcs bow in display space, so keep the aspect equal
    figure = Figure(figsize=((right + spacing) * inches, 2 * top * inches + 0.6))
    axes = figure.add_subplot()
    boxes = {}
    for activity, x in where.items():
        box = FancyBboxPatch(
            (x - half_width, -half_height), 2 * half_width, 2 * half_height,
            boxstyle="round,pad=0.02", facecolor="#dbe9f6", edgecolor="#2b5d8a", zorder=3,
        )  # fmt: skip
        axes.add_patch(box)
        boxes[activity] = box
        counts = f"start {starts.get(activity, 0)} · end {ends.get(activity, 0)}"
        axes.text(x, 0.06, activity, ha="center", va="center", fontsize=9, zorder=4)
        axes.text(x, -0.16, counts, ha="center", va="center", fontsize=6, color="#555", zorder=4)
    for (source, target), count in sorted(edges.items(), key=lambda item: item[1]):
        _draw_arc(axes, where, boxes, source, target, count / heaviest, count)
    axes.set_xlim(-spacing, right)
    axes.set_ylim(-top, top)
    axes.set_aspect("equal")
    axes.set_axis_off()
    axes.set_title(title)
    figure.tight_layout()
    return figure


def _draw_arc(
    axes: Any,
    where: Mapping[str, float],
    boxes: Mapping[str, FancyBboxPatch],
    source: str,
    target: str,
    weight: float,
    count: int,
) -> None:
    """One arc: bowed up when it goes forward, down when back (arc3 bows to the right of its
    direction), a loop above the box when it returns to the same activity."""
    x1, x2 = where[source], where[target]
    style: dict[str, Any] = {
        "arrowstyle": "-|>",
        "mutation_scale": 8 + 4 * weight,
        "linewidth": 0.6 + 5.0 * weight,
        "color": "#c0504d",
        "alpha": 0.35 + 0.5 * weight,
        "zorder": 2,
    }
    if source == target:
        start, end, bend = (x1 - 0.3, 0.35), (x1 + 0.3, 0.35), -2.2
        label = (x1, 0.35 - 0.5 * bend * 0.6)
        arc = FancyArrowPatch(start, end, connectionstyle=f"arc3,rad={bend}", **style)
    else:
        bend = -0.6
        label = ((x1 + x2) / 2, -0.5 * bend * (x2 - x1))  # the curve's midpoint
        arc = FancyArrowPatch(
            (x1, 0.0), (x2, 0.0), connectionstyle=f"arc3,rad={bend}",
            patchA=boxes[source], patchB=boxes[target], **style,
        )  # fmt: skip
    axes.add_patch(arc)
    plate = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"}
    axes.text(*label, f"{count:,}", ha="center", va="center", fontsize=7, zorder=5, bbox=plate)


# ---- variants -----------------------------------------------------------------------------


def milestones(tables: Mapping[str, pa.Table], journeys: pa.Table) -> list[str]:
    """The users' event types that carry no amount (``value`` null in every event of the
    type: enrolled, active, streak, churned), i.e. steps of a journey rather than what an
    active day contained (scans, feedback, reports, XP)."""
    events = tables["events"]
    kinds = as_text(events["ocel_type"])
    mine = pc.is_in(kinds, pc.unique(journeys["activity"]))
    table = pa.table({"kind": kinds, "valued": pc.is_valid(events["value"])}).filter(mine)
    valued = table.group_by("kind", use_threads=False).aggregate([("valued", "any")])
    plain = set(valued.filter(pc.invert(valued["valued_any"]))["kind"].to_pylist())
    return [a for a in activity_order(journeys) if a in plain]


def journey_variants(
    journeys: pa.Table,
    users: pa.Array,
    steps: Sequence[str],
    churned: str = CHURNED,
) -> pa.Table:
    """Each user's journey as text (user, variant, group): the ``steps`` activities in time
    order, joined by " > ". Consecutive repeats of an activity are one step, written with a
    ``+`` when it repeats (``active+``: one run of several active days, however many), so that
    journeys of the same shape are one variant (how long users stayed active is in the
    streak view). ``group`` is the churn event's name (``churned``) for a user who has one,
    else ``retained``; a user with none of the steps has the variant ``(no events)``."""
    rows = journeys.filter(pc.is_in(journeys["activity"], pa.array(list(steps), pa.string())))
    user = rows["user"].combine_chunks()
    activity = rows["activity"].combine_chunks()
    user_code = pc.dictionary_encode(user).indices.to_numpy(zero_copy_only=False)
    activity_code = pc.dictionary_encode(activity).indices.to_numpy(zero_copy_only=False)
    same = np.zeros(len(user_code), bool)
    same[1:] = (user_code[1:] == user_code[:-1]) & (activity_code[1:] == activity_code[:-1])
    starts = np.flatnonzero(~same)
    runs = np.diff(np.append(starts, len(same)))
    step = pc.binary_join_element_wise(
        activity.take(pa.array(starts)), pa.array(np.where(runs > 1, "+", "")), ""
    )
    variants = _joined_per_user(user.take(pa.array(starts)), step)
    gone = pc.unique(journeys.filter(pc.equal(journeys["activity"], churned))["user"])
    everyone = pa.table({"user": users})
    table = everyone.join(variants, "user", join_type="left outer")
    group = pc.if_else(pc.is_in(table["user"], gone), churned, RETAINED)
    variant = pc.fill_null(table["variant"], NONE)
    return pa.table({"user": table["user"], "variant": variant, "group": group}).sort_by("user")


def _joined_per_user(user: pa.Array, step: pa.Array) -> pa.Table:
    """(user, variant): a user's steps (rows sorted by user) joined by " > ", column-wise."""
    if len(user) == 0:
        return pa.table({"user": pa.array([], pa.string()), "variant": pa.array([], pa.string())})
    runs = pc.run_end_encode(user)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), runs.run_ends.cast(pa.int32())])
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, step), SEPARATOR)
    return pa.table({"user": runs.values, "variant": joined})


def variant_table(per_user: pa.Table, arm: str) -> pa.Table:
    """(arm, group, variant, count, share): how many of the group's users took each variant,
    the most frequent first."""
    counts = per_user.group_by(["group", "variant"], use_threads=False).aggregate(
        [("user", "count")]
    )
    totals = per_user.group_by("group", use_threads=False).aggregate([("user", "count")])
    totals = totals.rename_columns(["group", "group_users"])
    table = counts.join(totals, "group").rename_columns(
        ["group", "variant", "count", "group_users"]
    )
    share = pc.divide(table["count"].cast(pa.float64()), table["group_users"].cast(pa.float64()))
    table = pa.table(
        {"arm": pa.repeat(pa.scalar(arm), table.num_rows), "group": table["group"],
         "variant": table["variant"], "count": table["count"], "share": share}
    )  # fmt: skip
    return table.sort_by(
        [("group", "descending"), ("count", "descending"), ("variant", "ascending")]
    )


# ---- time to the first streak -------------------------------------------------------------


def streak_days(
    journeys: pa.Table, users: pa.Array, start: str = ENROLLED, goal: str = STREAK
) -> pa.Table:
    """Per user who enrolled: the calendar days from ``start`` to its first ``goal`` (null if
    it never got there within the log's horizon)."""
    first_start = _first_day(journeys, start).rename_columns(["user", "start_day"])
    first_goal = _first_day(journeys, goal).rename_columns(["user", "goal_day"])
    enrolled = pa.table({"user": users}).join(first_start, "user", join_type="inner")
    table = enrolled.join(first_goal, "user", join_type="left outer").sort_by("user")
    days = pc.subtract(table["goal_day"], table["start_day"])
    return pa.table({"user": table["user"], "enrolled_on": table["start_day"].cast(pa.date32()),
                     "days_to_streak": days})  # fmt: skip


def _first_day(journeys: pa.Table, activity: str) -> pa.Table:
    """(user, day number since 1970) of the user's first event of this type."""
    rows = journeys.filter(pc.equal(journeys["activity"], activity))
    day = pc.cast(pc.cast(rows["time"], pa.date32()), pa.int32())
    first = pa.table({"user": rows["user"], "day": day}).group_by("user", use_threads=False)
    return first.aggregate([("day", "min")])


def streak_summary(per_user: pa.Table, users: int, arm: str) -> dict[str, object]:
    """One arm's row: its users, how many enrolled, reached the streak, the share of enrolled
    users who did, and the days it took them (median, mean)."""
    days = per_user["days_to_streak"].drop_null().to_numpy().astype(float)
    enrolled = per_user.num_rows
    return {
        "arm": arm,
        "users": users,
        "enrolled": enrolled,
        "reached_streak": len(days),
        "share_reached": len(days) / enrolled if enrolled else float("nan"),
        "median_days": float(np.median(days)) if len(days) else float("nan"),
        "mean_days": float(days.mean()) if len(days) else float("nan"),
    }


def draw_streak_curves(
    per_arm: Mapping[str, pa.Table], horizon: int, marks: JourneyMarks = JourneyMarks()
) -> Figure:
    """Per arm, the share of its enrolled users who reached their first streak within d days
    of enrolling (a cumulative curve; it levels off at the share that ever did: users who
    enrolled late had less time, so shares are censored at the log's horizon)."""
    figure = Figure(figsize=(7.0, 4.2))
    axes = figure.add_subplot()
    grid = np.arange(horizon + 1)
    for arm, table in per_arm.items():
        days = table["days_to_streak"].drop_null().to_numpy()
        share = np.searchsorted(np.sort(days), grid, side="right") / max(table.num_rows, 1)
        axes.step(grid, share, where="post", label=f"{arm} ({table.num_rows} enrolled)")
    axes.set_xlabel(f"days since {marks.start}")
    axes.set_ylabel(f"share with a first {marks.goal}")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(f"Time from {marks.start} to the first {marks.goal}, per arm")
    figure.tight_layout()
    return figure


# ---- all views ----------------------------------------------------------------------------


def write_process_views(
    source: LogSource, out_dir: str | Path, marks: JourneyMarks = JourneyMarks()
) -> list[Path]:
    """Write every view of the log into ``out_dir`` (made if missing) and return the files:
    per arm ``dfg_<arm>.png`` and ``dfg_<arm>.csv``; ``variants.csv``; ``streak_days.csv``
    (per user), ``streak_summary.csv`` (per arm) and ``streak_days.png``."""
    require_pm4py()
    tables = load_tables(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    journeys = user_journeys(tables)
    order, steps = activity_order(journeys), milestones(tables, journeys)
    written: list[Path] = []
    variants, streaks, summaries = [], {}, []
    for arm in arms(tables):
        mine = journeys.filter(pc.equal(journeys["arm"], arm))
        users = users_of(tables, arm)
        written += _write_dfg(mine, order, arm, out)
        variants.append(variant_table(journey_variants(mine, users, steps, marks.churned), arm))
        streaks[arm] = streak_days(mine, users, marks.start, marks.goal)
        summaries.append(streak_summary(streaks[arm], len(users), arm))
    written.append(_write_csv(_concat(variants), out / "variants.csv"))
    per_user = [_with_arm(table, arm) for arm, table in streaks.items()]
    written.append(_write_csv(_concat(per_user), out / "streak_days.csv"))
    written.append(_write_csv(pa.Table.from_pylist(summaries), out / "streak_summary.csv"))
    figure = draw_streak_curves(streaks, _horizon_days(journeys), marks)
    written.append(_save(figure, out / "streak_days.png"))
    return written


def _write_dfg(journeys: pa.Table, order: Sequence[str], arm: str, out: Path) -> list[Path]:
    """One arm's directly-follows graph: its edges as CSV and its drawing as PNG."""
    edges, starts, ends = discover_dfg(journeys)
    name = _file_part(arm)
    figure = draw_dfg(edges, order, starts, ends, f"User journeys, arm {arm}")
    return [
        _write_csv(dfg_table(edges), out / f"dfg_{name}.csv"),
        _save(figure, out / f"dfg_{name}.png"),
    ]


def _horizon_days(journeys: pa.Table) -> int:
    """Calendar days the users' events span (the longest a first streak can take here)."""
    if journeys.num_rows == 0:
        return 1
    days = pc.cast(pc.cast(journeys["time"], pa.date32()), pa.int32())
    low, high = pc.min_max(days).values()
    return max(int(high.as_py()) - int(low.as_py()), 1)


def _with_arm(table: pa.Table, arm: str) -> pa.Table:
    return table.add_column(0, "arm", pa.repeat(pa.scalar(arm), table.num_rows))


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables) if tables else pa.table({})


def _file_part(arm: str) -> str:
    """The arm's name as a safe piece of a file name."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", arm) or "arm"


def _write_csv(table: pa.Table, path: Path) -> Path:
    pacsv.write_csv(table, path)
    return path


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=120)
    return path
