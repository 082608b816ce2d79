"""What a focus-group study found: each persona's exit answer, shares over the group, the
themes raised, and several changes compared side by side.

Everything here is plain arithmetic and keyword counting over the study's own records, so the
same transcript always gives the same analysis: no model is asked to summarise (a 135M model
summarises poorly, and a summary would not be reproducible across backends).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

STANCES = ("for", "against", "unsure")
DIRECTIONS = ("up", "same", "down")
BEHAVIOURS = ("participation", "scans", "feedback")
"""What the exit question asks a direction for: opening the app, scanning, giving feedback."""
SAY_CHARS = 160
"""Longest message a persona may say in a turn (the answer schema holds the model to it)."""
REASON_CHARS = 120

_STANCE_WORDS = {
    "for": "for", "support": "for", "supportive": "for", "yes": "for", "agree": "for",
    "positive": "for", "in favour": "for", "in favor": "for", "pro": "for",
    "against": "against", "oppose": "against", "opposed": "against", "no": "against",
    "negative": "against", "disagree": "against",
    "unsure": "unsure", "neutral": "unsure", "undecided": "unsure", "maybe": "unsure",
    "mixed": "unsure", "not sure": "unsure",
}  # fmt: skip
_DIRECTION_WORDS = {
    "up": "up", "more": "up", "increase": "up", "higher": "up", "raise": "up",
    "same": "same", "unchanged": "same", "keep": "same", "no change": "same", "flat": "same",
    "down": "down", "less": "down", "decrease": "down", "lower": "down", "fewer": "down",
}  # fmt: skip

THEMES: dict[str, tuple[str, ...]] = {
    "fairness": ("fair", "unfair", "equal", "rigged", "penali", "punish", "favour", "favor"),
    "streak pressure": (
        "streak", "every day", "each day", "daily", "miss a day", "pressure", "stress", "guilt",
        "anxious",
    ),
    "effort/time": (
        "time", "effort", "busy", "hassle", "extra work", "minute", "tired", "schedule",
        "walk", "detour",
    ),
    "reward value": ("xp", "point", "reward", "worth", "bonus", "level", "earn", "value"),
    "gaming/cheating": (
        "cheat", "game the", "gaming the", "spam", "fake", "loophole", "exploit", "farm",
        "abuse",
    ),
    "motivation/meaning": (
        "motivat", "meaning", "purpose", "matter", "care", "fix", "repair", "improve",
        "helpful", "make a difference",
    ),
    "trust/communication": (
        "trust", "warning", "without notice", "announce", "transparen", "explain", "honest",
    ),
    "competition/status": ("leaderboard", "rank", "compet", "beat", "first place", "top"),
    "habit/routine": ("habit", "routine", "rounds", "used to", "usual"),
}  # fmt: skip
"""Theme -> keyword stems. A message raises a theme when one of its stems starts a word of
the message (case-insensitive: "motivat" matches "motivated", "xp" matches "XP"). The lexicon
is deliberately small and readable: a count is a pointer into the transcript, not a measure."""

_THEME_PATTERNS = {
    theme: re.compile(r"\b(?:" + "|".join(re.escape(s) for s in stems) + ")", re.IGNORECASE)
    for theme, stems in THEMES.items()
}


def read_stance(raw: object) -> str | None:
    """``raw`` as one of :data:`STANCES`, reading synonyms and case; None if it is none."""
    return _STANCE_WORDS.get(str(raw).strip().lower()) if raw is not None else None


def read_direction(raw: object) -> str | None:
    """``raw`` as one of :data:`DIRECTIONS`, reading synonyms and case; None if it is none."""
    return _DIRECTION_WORDS.get(str(raw).strip().lower()) if raw is not None else None


# ---- answers ----------------------------------------------------------------------------------


def read_say(text: str) -> tuple[dict[str, str] | None, str | None]:
    """A turn's answer as ``{"stance", "say"}``, or None and why it is unusable."""
    data = _json_object(text)
    if data is None:
        return None, f"no JSON object in {_clip(text, 80)!r}"
    stance = read_stance(data.get("stance"))
    say = " ".join(str(data.get("say") or "").split())
    if stance is None or not say:
        return None, f"needs a stance and something said, got {_clip(text, 80)!r}"
    return {"stance": stance, "say": _clip(say, SAY_CHARS)}, None


def read_exit(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """An exit answer as ``{"stance", "participation", "scans", "feedback", "reason"}``."""
    data = _json_object(text)
    if data is None:
        return None, f"no JSON object in {_clip(text, 80)!r}"
    answer: dict[str, Any] = {"stance": read_stance(data.get("stance"))}
    answer |= {b: read_direction(data.get(b)) for b in BEHAVIOURS}
    missing = [k for k, v in answer.items() if v is None]
    if missing:
        return None, f"no valid {', '.join(missing)} in {_clip(text, 80)!r}"
    answer["reason"] = _clip(" ".join(str(data.get("reason") or "").split()), REASON_CHARS)
    return answer, None


def _json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``; one repair when it is cut off by the token limit
    (the string left open is closed, a dangling key dropped, the object closed). Our answers
    are flat objects, so no nesting needs closing."""
    start = text.find("{")
    if start < 0:
        return None
    body = text[start:]
    decoder = json.JSONDecoder(strict=False)  # a newline inside a string is no reason to fail
    try:
        data, _ = decoder.raw_decode(body)
    except json.JSONDecodeError:
        quotes = len(re.findall(r'(?<!\\)"', body))
        repaired = re.sub(r',\s*("[^"]*"\s*:?\s*)?$', "", body + ('"' if quotes % 2 else ""))
        try:
            data = decoder.decode(repaired + "}")
        except json.JSONDecodeError:
            return None
    return data if isinstance(data, dict) else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- one study ----------------------------------------------------------------------------------


def analyse(
    ids: Sequence[str],
    transcript: Sequence[Mapping[str, Any]],
    exits: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """A study's analysis: per persona its exit answer or, without one (a failed call, the
    budget), the stance it last stated in the discussion (``source`` says which, None when it
    said nothing); the shares over the group (:func:`aggregate`); the themes raised.

    Args:
        ids: the personas, in speaking order.
        transcript: the study's messages (``speaker``, ``role``, ``text``, ``stance``).
        exits: persona id -> its exit answer (:func:`read_exit`).
    """
    personas: dict[str, dict[str, Any]] = {}
    for pid in ids:
        said = [m for m in transcript if m["speaker"] == pid and m["role"] == "participant"]
        if pid in exits:
            personas[pid] = {**exits[pid], "source": "exit"}
        else:
            personas[pid] = {
                "stance": said[-1]["stance"] if said else None,
                **dict.fromkeys(BEHAVIOURS),
                "reason": "",
                "source": "discussion" if said else None,
            }
    spoken = [m for m in transcript if m["role"] != "facilitator"]
    return {"personas": personas, "aggregate": aggregate(personas), "themes": themes(spoken)}


def themes(messages: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per theme of :data:`THEMES`: the messages that raise it, the share of all messages
    and who raised it (speaker ids, first-raised order).

    Args:
        messages: transcript entries with ``speaker`` and ``text``.
    """
    rows = list(messages)
    found: dict[str, dict[str, Any]] = {}
    for theme, pattern in _THEME_PATTERNS.items():
        hits = [m for m in rows if pattern.search(str(m.get("text", "")))]
        found[theme] = {
            "messages": len(hits),
            "share": len(hits) / len(rows) if rows else 0.0,
            "speakers": list(dict.fromkeys(str(m["speaker"]) for m in hits)),
        }
    return found


def aggregate(answers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Shares over the personas that answered: stance for/against/unsure and, per behaviour,
    up/same/down and ``net`` = share up - share down (in [-1, 1]).

    Args:
        answers: persona id -> its exit answer (``stance``, one direction per behaviour;
            None where it gave none).
    """
    summary: dict[str, Any] = {"personas": len(answers)}
    stances = [a.get("stance") for a in answers.values() if a.get("stance") in STANCES]
    summary["stance"] = {"answered": len(stances), **_shares(stances, STANCES)}
    for behaviour in BEHAVIOURS:
        said = [a.get(behaviour) for a in answers.values() if a.get(behaviour) in DIRECTIONS]
        shares = _shares(said, DIRECTIONS)
        summary[behaviour] = {
            "answered": len(said),
            **shares,
            "net": shares["up"] - shares["down"] if said else math.nan,
        }
    return summary


def _shares(values: Sequence[Any], labels: Sequence[str]) -> dict[str, float]:
    n = len(values)
    return {label: (values.count(label) / n if n else math.nan) for label in labels}


COMPARISON_FIELDS = (
    "change", "runs", "budget_reached", "for", "against", "unsure",
    "participation_net", "scans_net", "feedback_net", "errors",
)  # fmt: skip


def compare(studies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per change (first-seen order): the mean over its runs of the stance shares and
    of each behaviour's net direction, with how many runs there were, how many hit the budget
    and their errors in all. NaN means no run had an answer for it.

    Args:
        studies: study results (``config.change.text``, ``analysis.aggregate``, ``status``,
            ``metrics.errors``), several runs of a change each.
    """
    by_change: dict[str, list[Mapping[str, Any]]] = {}
    for study in studies:
        by_change.setdefault(str(study["config"]["change"]["text"]), []).append(study)
    rows = []
    for change, runs in by_change.items():
        summaries = [r["analysis"]["aggregate"] for r in runs]
        row: dict[str, Any] = {
            "change": change,
            "runs": len(runs),
            "budget_reached": sum(r["status"] == "budget_reached" for r in runs),
        }
        for stance in STANCES:
            row[stance] = _mean(s["stance"][stance] for s in summaries)
        for behaviour in BEHAVIOURS:
            row[f"{behaviour}_net"] = _mean(s[behaviour]["net"] for s in summaries)
        row["errors"] = sum(int(r["metrics"]["errors"]) for r in runs)
        rows.append(row)
    return rows


def _mean(values: Iterable[float]) -> float:
    known = [v for v in values if not math.isnan(v)]
    return sum(known) / len(known) if known else math.nan


def comparison_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as a Markdown table: shares in percent, nets signed (+0.33)."""
    head = ["change", "runs", "for", "against", "unsure", "participation", "scans", "feedback"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            str(r["change"]).replace("|", "/"),
            f"{r['runs']}" + (f" ({r['budget_reached']} budget)" if r["budget_reached"] else ""),
            *(_percent(r[s]) for s in STANCES),
            *(_signed(r[f"{b}_net"]) for b in BEHAVIOURS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _percent(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{100 * share:.0f}%"


def _signed(net: float) -> str:
    return "n/a" if math.isnan(net) else f"{net:+.2f}"


def write_comparison(rows: Sequence[Mapping[str, Any]], folder: Path) -> list[Path]:
    """``comparison.csv`` (full precision, empty cell for NaN) and ``comparison.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / "comparison.csv", folder / "comparison.md"
    with csv_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COMPARISON_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row[k]) for k in COMPARISON_FIELDS})
    md_path.write_text(comparison_markdown(rows), encoding="utf-8")
    return [csv_path, md_path]


def _cell(value: Any) -> Any:
    return "" if isinstance(value, float) and math.isnan(value) else value


def transcript_markdown(study: Mapping[str, Any]) -> str:
    """A study as a page to read: the change, the discussion by round, the exit answers, the
    themes and the figures."""
    names = {a["id"]: a["name"] for a in study["agents"]}
    config, metrics = study["config"], study["metrics"]
    lines = [
        f"# Focus group: {config['change']['text']}",
        "",
        f"{len(names)} personas, {config['turns']} rounds, seed {config['seed']}; "
        f"status: {study['status']}"
        + (f" ({study['status_reason']})" if study["status_reason"] else ""),
    ]
    turn = None
    for m in study["transcript"]:
        if m["role"] == "participant" and m["turn"] != turn:
            turn = m["turn"]
            lines += ["", f"## Round {turn}", ""]
        elif m["role"] != "participant" and m["speaker"] != "facilitator":
            continue  # exit answers are tabled below
        if m["speaker"] == "facilitator":
            lines += ["", f"*Facilitator:* {m['text']}"]
        else:
            lines.append(
                f"- **{names.get(m['speaker'], m['speaker'])}** ({m['stance']}): {m['text']}"
            )
    lines += [
        "",
        "## Exit answers",
        "",
        "| persona | stance | participation | scans | feedback | reason |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for pid, a in study["analysis"]["personas"].items():
        cells = [names.get(pid, pid), *(str(a[k] or "-") for k in ("stance", *BEHAVIOURS))]
        lines.append("| " + " | ".join([*cells, a["reason"].replace("|", "/")]) + " |")
    lines += ["", "## Themes", ""]
    for theme, t in study["analysis"]["themes"].items():
        if t["messages"]:
            lines.append(f"- {theme}: {t['messages']} messages ({', '.join(t['speakers'])})")
    figures = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in metrics.items()}
    lines += ["", "## Figures", "", f"`{json.dumps(figures)}`", ""]
    return "\n".join(lines)
