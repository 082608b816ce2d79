"""Replay over an external log described by a manifest: reading it, refusing what does not fit
(every problem at once, naming rows and fields), replaying without leaks, and off-policy
estimates against a truth known by construction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from replay_policies import AlwaysTen, Chaotic, ExternalSnoop

from arena_rl.eventlog.external import (
    ManifestError,
    load_external,
    off_policy_external,
    replay_external,
)

ACTIONS = ["none", "discount_10", "discount_20"]
LOGGING = [0.5, 0.3, 0.2]
BUY = {"none": 0.2, "discount_10": 0.35, "discount_20": 0.45}
"""The chance of a purchase within the window after each action: the truth."""


def synthetic_log(n_cases: int = 600, seed: int = 0) -> list[dict[str, Any]]:
    """Carts abandoned, an offer drawn by the logging policy, maybe a purchase days later."""
    rng = np.random.default_rng(seed)
    rows = []
    for case in range(n_cases):
        t = 1_700_000_000 + case * 3_600
        action = str(rng.choice(ACTIONS, p=LOGGING))
        value = float(rng.uniform(5, 80))
        p = LOGGING[ACTIONS.index(action)]
        rows.append({"user": f"u{case}", "ts": t, "t": float(t), "event": "cart abandoned",
                     "cart_value": value, "offer": action, "p": p})  # fmt: skip
        if rng.random() < BUY[action]:
            rows.append({"user": f"u{case}", "ts": t + 86_400 * 2, "t": float(t + 86_400 * 2),
                         "event": "purchase"})  # fmt: skip
    rows.sort(key=lambda r: r["ts"])
    return rows


MANIFEST: dict[str, Any] = {
    "log": "events.jsonl",
    "case_id": "user",
    "timestamp": "ts",
    "activity": "event",
    "activities": ["cart abandoned", "purchase"],
    "decision_points": [
        {
            "name": "win back",
            "activity": "cart abandoned",
            "when": [{"field": "cart_value", "op": ">=", "value": 0}],
            "allowed_actions": ACTIONS,
            "action": "offer",
            "propensity": "p",
            "features": ["cart_value", "t"],
        }
    ],
    "outcomes": {"positive": ["purchase"], "window_days": 7},
}


def write(folder: Path, rows: list[dict[str, Any]], manifest: dict[str, Any] = MANIFEST) -> Path:
    if manifest["log"].endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), folder / manifest["log"])
    else:
        (folder / manifest["log"]).write_text("\n".join(json.dumps(r) for r in rows))
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def test_an_external_log_replays_end_to_end_and_dr_covers_the_truth(tmp_path: Path) -> None:
    log = load_external(write(tmp_path, synthetic_log()))
    assert len(log.points) == 600
    replayed = replay_external(log, AlwaysTen)
    assert replayed.n_violations == 0 and replayed.faults == []
    logged = np.mean([p["action"] == "discount_10" for p in log.points])
    assert replayed.agreement == pytest.approx(logged)
    found = off_policy_external(log, replayed, n_boot=400)
    dr = found["dr"]
    assert dr.ci_low <= BUY["discount_10"] <= dr.ci_high
    assert found["ips"].ci_low <= BUY["discount_10"] <= found["ips"].ci_high


def test_parquet_logs_read_the_same(tmp_path: Path) -> None:
    rows = synthetic_log(50)
    jsonl = load_external(write(tmp_path, rows))
    (tmp_path / "pq").mkdir()
    parquet = load_external(write(tmp_path / "pq", rows, {**MANIFEST, "log": "events.parquet"}))
    assert [p["reward"] for p in jsonl.points] == [p["reward"] for p in parquet.points]


def test_a_policy_sees_no_later_decision_point(tmp_path: Path) -> None:
    log = load_external(write(tmp_path, synthetic_log(80)))
    replayed = replay_external(log, ExternalSnoop)
    assert "LEAK" not in replayed.actions and replayed.n_violations == 0


def test_a_policy_that_raises_or_answers_junk_is_recorded_with_its_row(tmp_path: Path) -> None:
    log = load_external(write(tmp_path, synthetic_log(20)))
    replayed = replay_external(log, Chaotic)
    assert replayed.n_violations == 20
    assert any("the policy raised RuntimeError" in (v or "") for v in replayed.violations)
    junk = [v for v in replayed.violations if v and "free_money" in v]
    assert junk and junk[0].startswith("row ")
    assert replayed.faults and "chooser bug" in replayed.faults[0]


def test_every_problem_is_reported_at_once_naming_rows_and_fields(tmp_path: Path) -> None:
    rows = synthetic_log(30)
    rows[5]["ts"] = rows[4]["ts"] - 10  # out of order
    rows[7]["event"] = "teleported"  # not a declared activity
    first_cart = next(i for i, r in enumerate(rows) if r["event"] == "cart abandoned")
    rows[first_cart]["offer"] = "discount_99"  # not an allowed action
    point = {**MANIFEST["decision_points"][0], "features": ["cart_value", "t", "age"]}
    manifest = {**MANIFEST, "decision_points": [point]}
    with pytest.raises(ManifestError) as caught:
        load_external(write(tmp_path, rows, manifest))
    message = str(caught.value)
    assert "row 5: timestamps out of order" in message
    assert "row 7: unknown activity 'teleported'" in message
    assert f"row {first_cart}: decision point 'win back': action 'discount_99'" in message
    assert "names field 'age', which no row has" in message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"case_id": None}, "case_id"),
        ({"outcomes": {"window_days": 7}}, "at least one positive or negative"),
        ({"decision_points": []}, "decision_points"),
        ({"log": "missing.jsonl"}, "missing.jsonl does not exist"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_field(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    manifest = {k: v for k, v in {**MANIFEST, **change}.items() if v is not None}
    rows = synthetic_log(10)
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest))
    with pytest.raises(ManifestError, match=message):
        load_external(path)


def test_the_replay_command_takes_a_manifest_and_a_policy_class(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    manifest = write(tmp_path, synthetic_log(60))
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "replay.py"), f"log={manifest}",
         "policy=replay_policies:AlwaysTen", "tracking.enabled=false",
         f"hydra.run.dir={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(root / "tests")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "decision points: 60" in done.stdout and "dr " in done.stdout
    bad = subprocess.run(
        [sys.executable, str(root / "scripts" / "replay.py"), f"log={manifest}",
         "policy=nowhere", "tracking.enabled=false", f"hydra.run.dir={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "module:Class" in bad.stderr
