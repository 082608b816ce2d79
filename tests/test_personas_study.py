"""Focus-group studies: reading changes and answers, the analysis and comparison arithmetic,
bad input refused before any call, and (marked) real studies on the local model, its cache,
a budget that bites, and Ray giving the studies in-process gives."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arena_rl.llm.settings import LLMSettings
from arena_rl.personas import analysis
from arena_rl.personas.spec import load_personas
from arena_rl.personas.study import Change, StudySpec, parse_change, run_study
from arena_rl.personas.study_cli import main, run_studies

# ---- the change -----------------------------------------------------------------------------


def test_free_text_change_is_kept_as_written() -> None:
    change = parse_change("  scan XP 10 → 6, streak bonus doubled ")
    assert change == Change("scan XP 10 → 6, streak bonus doubled")
    assert change.knobs == {}


def test_knob_assignments_are_rendered_from_the_economy_defaults() -> None:
    change = parse_change("scanXp=6, streakBonusPerDay = 10")
    assert change.text == "scanXp 10 → 6, streakBonusPerDay 5 → 10"
    assert change.knobs == {"scanXp": 6.0, "streakBonusPerDay": 10.0}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("scanXP=6", "unknown knob 'scanXP'"),
        ("scanXp=6,streakBonus=3", "unknown knob 'streakBonus'"),
        ("scanXp=6, streak doubled", "'streak doubled' is not a knob assignment"),
        ("scanXp=six", "scanXp='six' is not a number"),
        ("scanXp=6,scanXp=7", "knob 'scanXp' is set twice"),
        ("scanXp=-1", "scanXp must be at least 0"),
        ("scanDailyCap=2.5", "scanDailyCap must be a whole number"),
        ("   ", "must not be empty"),
    ],
)
def test_bad_changes_are_refused_naming_the_problem(raw: str, named: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_change(raw)
    assert named in str(caught.value)


def test_an_unknown_knob_error_lists_the_knobs() -> None:
    with pytest.raises(ValueError) as caught:
        parse_change("xp=3")
    assert "scanXp" in str(caught.value) and "feedbackDailyCap" in str(caught.value)


# ---- answers --------------------------------------------------------------------------------


def test_a_turn_answer_is_read_with_synonyms_and_a_cut_off_one_is_repaired() -> None:
    assert analysis.read_say('{"stance": "for", "say": "Fine  by\nme."}') == (
        {"stance": "for", "say": "Fine by me."},
        None,
    )
    assert analysis.read_say('Sure: {"stance": "Oppose", "say": "No way"} ok')[0] == {
        "stance": "against",
        "say": "No way",
    }
    # cut off by max_tokens before the object closed: closed and read
    assert analysis.read_say('{"say": "It depends on whe", "stance": "unsure"')[0] == {
        "stance": "unsure",
        "say": "It depends on whe",
    }
    # cut off before the stance is complete: no guess
    assert analysis.read_say('{"say": "It depends", "stance": "uns')[0] is None
    assert analysis.read_say('{"say": "It depends on wh')[0] is None
    answer, problem = analysis.read_say('{"stance": "maybe later", "say": "hm"}')
    assert answer is None and problem is not None and "stance" in problem
    assert analysis.read_say("I like it")[0] is None


def test_an_exit_answer_needs_a_stance_and_every_direction() -> None:
    text = '{"stance": "against", "participation": "less", "scans": "same", "feedback": "Down"'
    answer, problem = analysis.read_exit(text + ', "reason": "Streaks feel like a chore"}')
    assert problem is None
    assert answer == {
        "stance": "against",
        "participation": "down",
        "scans": "same",
        "feedback": "down",
        "reason": "Streaks feel like a chore",
    }
    cut, _ = analysis.read_exit(text + ', "reas')  # the reason's key cut off: dropped
    assert cut is not None and cut["reason"] == ""
    answer, problem = analysis.read_exit('{"stance": "for", "participation": "up"}')
    assert answer is None and problem is not None and "scans, feedback" in problem


# ---- analysis -------------------------------------------------------------------------------

TRANSCRIPT = [
    {"speaker": "maya", "role": "participant", "text": "Cutting scan XP is unfair to nurses.",
     "stance": "against"},
    {"speaker": "priya", "role": "participant",
     "text": "A bigger streak bonus means more points; I will beat the leaderboard.",
     "stance": "for"},
    {"speaker": "tom", "role": "participant", "text": "I have no time for daily check-ins.",
     "stance": "against"},
    {"speaker": "maya", "role": "participant",
     "text": "People will just spam fake scans to keep the streak.", "stance": "unsure"},
]  # fmt: skip


def test_themes_count_the_messages_that_raise_each_theme_and_who_raised_it() -> None:
    found = analysis.themes(TRANSCRIPT)
    assert list(found) == list(analysis.THEMES)
    assert found["fairness"] == {"messages": 1, "share": 0.25, "speakers": ["maya"]}
    assert found["reward value"]["messages"] == 2  # "XP", "bonus"/"points"
    assert found["streak pressure"]["speakers"] == ["priya", "tom", "maya"]
    assert found["effort/time"]["speakers"] == ["tom"]
    assert found["gaming/cheating"]["speakers"] == ["maya"]
    assert found["competition/status"]["speakers"] == ["priya"]
    assert found["trust/communication"]["messages"] == 0
    assert analysis.themes(TRANSCRIPT) == found  # deterministic
    assert analysis.themes([])["fairness"] == {"messages": 0, "share": 0.0, "speakers": []}


def test_analysis_falls_back_to_the_last_stated_stance_and_shares_count_answers() -> None:
    exits = {
        "priya": {"stance": "for", "participation": "up", "scans": "up", "feedback": "same",
                  "reason": "More XP."},
        "tom": {"stance": "against", "participation": "down", "scans": "same",
                "feedback": "down", "reason": "No time."},
    }  # fmt: skip
    result = analysis.analyse(["maya", "priya", "tom", "sam"], TRANSCRIPT, exits)
    people = result["personas"]
    assert people["maya"]["stance"] == "unsure" and people["maya"]["source"] == "discussion"
    assert people["maya"]["scans"] is None
    assert people["sam"] == {
        "stance": None, "participation": None, "scans": None, "feedback": None, "reason": "",
        "source": None,
    }  # fmt: skip
    assert people["tom"]["source"] == "exit"
    agg = result["aggregate"]
    assert agg["personas"] == 4
    assert agg["stance"] == {"answered": 3, "for": 1 / 3, "against": 1 / 3, "unsure": 1 / 3}
    assert agg["participation"] == {"answered": 2, "up": 0.5, "same": 0.0, "down": 0.5,
                                    "net": 0.0}  # fmt: skip
    assert agg["scans"]["net"] == 0.5 and agg["feedback"]["net"] == -0.5


def _study(change: str, seed: int, stances: list[str], scans: list[str]) -> dict[str, Any]:
    exits = {
        f"p{i}": {"stance": s, "participation": "same", "scans": d, "feedback": "same",
                  "reason": ""}
        for i, (s, d) in enumerate(zip(stances, scans, strict=True))
    }  # fmt: skip
    return {
        "status": "completed",
        "config": {"change": {"text": change, "knobs": {}}, "seed": seed},
        "metrics": {"errors": 1},
        "analysis": {"aggregate": analysis.aggregate(exits)},
    }


def test_comparison_means_each_change_over_its_runs(tmp_path: Path) -> None:
    studies = [
        _study("scanXp 10 → 6", 0, ["against", "against"], ["down", "down"]),
        _study("scanXp 10 → 6", 1, ["for", "against"], ["down", "same"]),
        _study("streak doubled", 0, ["for", "for"], ["up", "same"]),
        _study("streak doubled", 1, ["for", "unsure"], ["up", "up"]),
    ]
    studies[1]["status"] = "budget_reached"
    rows = analysis.compare(studies)
    assert [r["change"] for r in rows] == ["scanXp 10 → 6", "streak doubled"]
    cut, streak = rows
    assert cut["runs"] == 2 and cut["budget_reached"] == 1 and cut["errors"] == 2
    assert cut["for"] == 0.25 and cut["against"] == 0.75 and cut["unsure"] == 0.0
    assert cut["scans_net"] == pytest.approx(-0.75) and cut["participation_net"] == 0.0
    assert streak["for"] == 0.75 and streak["scans_net"] == 0.75
    files = analysis.write_comparison(rows, tmp_path)
    with files[0].open() as f:
        table = list(csv.DictReader(f))
    assert [r["change"] for r in table] == ["scanXp 10 → 6", "streak doubled"]
    assert float(table[0]["scans_net"]) == pytest.approx(-0.75)
    markdown = files[1].read_text()
    assert "| scanXp 10 → 6 | 2 (1 budget) | 25% | 75% | 0% | +0.00 | -0.75 | +0.00 |" in markdown


def test_comparison_of_runs_without_answers_is_nan_not_zero() -> None:
    rows = analysis.compare([_study("x", 0, [], [])])
    assert math.isnan(rows[0]["for"]) and math.isnan(rows[0]["scans_net"])
    assert "n/a" in analysis.comparison_markdown(rows)


# ---- bad input, refused before any call -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "99"], "--k must be between 1 and 14"),
        (["--k", "0"], "--k must be between 1 and 14"),
        (["--ids", "maya,nobody"], "no persona nobody"),
        (["--turns", "0"], "turns must be at least 1"),
        (["--budget-usd", "0"], "--budget-usd must be above 0"),
        (["--budget-usd", "-1"], "--budget-usd must be above 0"),
        (["--runs", "0"], "--runs must be at least 1"),
        (["--llm", "max_tokens=0"], "llm.max_tokens"),
        (["--llm", "colour=blue"], "llm.colour"),
        (["--change", "scanXp=6,bonus=2"], "unknown knob 'bonus'"),
        (["--personas", "nowhere"], "unknown persona file 'nowhere'"),
    ],
)
def test_bad_input_is_refused_before_any_call(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "answers.sqlite"
    argv = ["--change", "scanXp=6", "--cache-path", str(cache), "--out", str(tmp_path / "out")]
    assert main([*argv, *args, "--no-mlflow"]) == 2
    assert message in capsys.readouterr().err
    assert not cache.exists() and not (tmp_path / "out").exists()


def test_a_budget_on_an_unpriced_model_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai: {gpt-4o: {prompt: 1.0, completion: 1.0}}\n")
    argv = ["--change", "x", "--prices", str(prices), "--budget-usd", "1", "--no-mlflow"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "needs a priced model" in capsys.readouterr().err


# ---- real studies on the local model --------------------------------------------------------

# one thread: two threads on two cores shared with anything else wait on each other (5× slower)
SMALL = ["--turns", "2", "--llm", "max_tokens=72", "--llm", "n_threads=1"]


def _read(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "study.json").read_text())


@pytest.mark.llm
def test_a_real_study_has_the_results_shape_and_a_rerun_is_identical_and_free(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    cache, uri = tmp_path / "answers.sqlite", f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [*SMALL, "--k", "3", "--change", "scanXp=6,streakBonusPerDay=10"]
    argv += ["--cache-path", str(cache)]
    assert main([*argv, "--out", str(tmp_path / "cold"), "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    assert "worst case $0.0000" in printed and "MLflow run" in printed
    cold = _read(tmp_path / "cold")
    assert set(cold) >= {"transcript", "agents", "metrics", "config", "analysis", "status"}
    assert cold["status"] == "completed"
    assert [a["id"] for a in cold["agents"]] == ["maya", "priya", "rita"]
    spoken = [m for m in cold["transcript"] if m["role"] == "participant"]
    m = cold["metrics"]
    assert m["calls"] == 9 and m["cache_hits"] == 0  # 3 personas × (2 turns + exit)
    assert m["messages"] + m["errors"] == 9 and len(spoken) >= 4
    assert m["tokens"] > 0 and m["cost_usd"] == 0.0 and m["mean_response_s"] > 0
    for message in cold["transcript"]:
        assert set(message) >= {"turn", "speaker", "role", "text", "timestamp"}
    assert {m["speaker"] for m in spoken} <= {"maya", "priya", "rita"}
    assert cold["config"]["change"]["text"] == "scanXp 10 → 6, streakBonusPerDay 5 → 10"
    people = cold["analysis"]["personas"]
    assert set(people) == {"maya", "priya", "rita"}
    for answer in people.values():
        assert answer["stance"] in (*analysis.STANCES, None)
        for b in analysis.BEHAVIOURS:
            assert answer[b] in (*analysis.DIRECTIONS, None)
    assert set(cold["analysis"]["themes"]) == set(analysis.THEMES)
    assert (tmp_path / "cold" / "transcript.md").read_text().startswith("# Focus group: scanXp")
    assert (tmp_path / "cold" / "comparison.csv").is_file()

    client = MlflowClient(uri)
    [run] = client.search_runs(client.get_experiment_by_name("personas-study").experiment_id)
    assert run.data.params["k"] == "3" and run.data.params["backend"] == "local"
    assert run.data.metrics["study/calls"] == 9
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"study.json", "transcript.md", "comparison.csv", "comparison.md"} <= artifacts

    assert main([*argv, "--out", str(tmp_path / "warm"), "--no-mlflow"]) == 0
    warm = _read(tmp_path / "warm")
    assert warm["transcript"] == cold["transcript"]
    assert warm["analysis"] == cold["analysis"]
    assert warm["metrics"]["calls"] == 0 and warm["metrics"]["cache_hits"] == 9


@pytest.mark.llm
def test_a_budget_that_bites_ends_the_study_cleanly_keeping_what_was_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text('local: {"*": {prompt: 1000.0, completion: 1000.0}}\n')
    # a call's worst case is about (500 prompt + 64 completion tokens) × $0.001 ≈ $0.56
    argv = [*SMALL, "--k", "2", "--change", "scan XP halved", "--prices", str(prices)]
    argv += ["--budget-usd", "1.5"]
    argv += ["--cache-path", str(tmp_path / "answers.sqlite"), "--out", str(tmp_path / "out")]
    assert main([*argv, "--no-mlflow"]) == 0
    printed = capsys.readouterr().out
    assert "budget $1.5" in printed
    study = _read(tmp_path / "out")
    assert study["status"] == "budget_reached" and "budget" in study["status_reason"]
    assert 1 <= study["metrics"]["calls"] < 9
    assert study["budget"]["spent_usd"] <= 1.5 and study["budget"]["refused"] == 1
    assert study["metrics"]["cost_usd"] == pytest.approx(study["budget"]["spent_usd"])
    said = [m for m in study["transcript"] if m["role"] == "participant"]
    assert len(said) == study["metrics"]["calls"] - study["metrics"]["errors"] >= 1
    assert "budget_reached" in (tmp_path / "out" / "transcript.md").read_text()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.mark.llm
@pytest.mark.ray
def test_ray_gives_the_studies_in_process_gives(ray_cluster: None, tmp_path: Path) -> None:
    personas = tuple(load_personas("default")[:1])
    changes = [parse_change("scanXp=6"), parse_change("streak bonus doubled")]

    def specs(cache: str) -> list[StudySpec]:
        # one thread, as a one-CPU Ray task has, so both sides compute alike
        llm = LLMSettings.parse({"max_tokens": 72, "cache_path": cache, "n_threads": 1}, "llm")
        return [StudySpec(personas, c, 1, seed, llm) for c in changes for seed in (0, 1)]

    local = run_studies(specs(str(tmp_path / "local.sqlite")), workers=0)
    on_ray = run_studies(specs(str(tmp_path / "ray.sqlite")), workers=2)
    assert [r["metrics"]["calls"] for r in on_ray] == [2] * 4  # its own cache: all computed
    assert [r["analysis"] for r in on_ray] == [r["analysis"] for r in local]
    assert [r["transcript"] for r in on_ray] == [r["transcript"] for r in local]
    assert [r["config"]["seed"] for r in on_ray] == [0, 1, 0, 1]
    assert (
        run_study(specs(str(tmp_path / "local.sqlite"))[0])["transcript"]
        == (local[0]["transcript"])
    )
