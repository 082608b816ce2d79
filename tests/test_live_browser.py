"""The live page in a real headless Chromium, for each of its three sources: a tournament set
on Ray, a replay of its event log, and the served experiment driven by the real SDK.

Debian's chromium is driven by Playwright (which cannot download its own browsers here).
Screenshots go to ``$ARENA_RL_SCREENSHOTS`` (default: the test's temporary folder) for a person
to look at.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_support import serve
from tendedloop_agent import Agent, ConfigUpdate

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE = '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2">'
AGENTS = ["random", "pid"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        why = f"{CHROMIUM} is missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI installs it: its absence there is a broken set-up
        pytest.skip(why)
    with playwright.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield tab
    tab.close()
    assert not errors, errors


def screenshot(tab: Any, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ARENA_RL_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"live-{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def wait_for_every_arm(tab: Any, arms: list[str]) -> None:
    wanted = json.dumps(arms)
    tab.wait_for_function(
        f"() => {{ const l = window.arenaLive; return l && {wanted}.every("
        "a => (l.points[a] || 0) > 0); }",
        timeout=60_000,
    )


def feed_rejections(tab: Any) -> set[tuple[int, int, str, str]]:
    items = tab.locator('.feed-item[data-kind="guardrail"][data-outcome="rejected"]')
    found = set()
    for k in range(items.count()):
        item = items.nth(k)
        found.add(
            (
                int(item.get_attribute("data-tournament")),
                int(item.get_attribute("data-day")),
                item.get_attribute("data-arm"),
                item.get_attribute("data-code"),
            )
        )
    return found


def audited_rejections(out: Path) -> set[tuple[int, int, str, str]]:
    found = set()
    for path in sorted((out / "tournaments").glob("*.json")):
        result = json.loads(path.read_text())
        found |= {
            (result["index"], int(a["sim_day"]), a["variant"], a["rejection_code"])
            for a in result["audit"]
            if a["rejection_code"]
        }
    return found


@pytest.fixture(scope="module")
def tournament(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A small tournament set on Ray with the live page, lingering while the tests look."""
    out = tmp_path_factory.mktemp("watched")
    command = [
        sys.executable, str(ROOT / "scripts" / "tournament.py"), f"+agents=[{','.join(AGENTS)}]",
        "tournament.n_tournaments=2", "live=true", "live_page.port=0",
        "live_page.linger_s=300", f"tracking.uri=sqlite:///{out / 'mlflow.db'}",
        f"hydra.run.dir={out}",
    ]  # fmt: skip
    run = subprocess.Popen(command, cwd=out, stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    url = None
    for line in run.stdout:
        if line.startswith("live page: http"):
            url = line.split()[2]
            break
    assert url, "the tournament command printed no live page URL"
    try:
        yield url, out
    finally:
        run.send_signal(signal.SIGINT)  # ends the linger early
        run.communicate(timeout=60)


def test_a_tournament_set_is_watched_live(
    tournament: tuple[str, Path], page: Any, tmp_path: Path
) -> None:
    url, out = tournament
    page.goto(url)
    wait_for_every_arm(page, ["control_arm", *AGENTS])
    page.wait_for_function("() => window.arenaLive.ended", timeout=120_000)
    for agent in AGENTS:
        assert page.locator(f'#leaderboard tbody tr[data-agent="{agent}"]').count() == 1
    assert "2 / 2" in page.locator("#progress").inner_text()
    shown = feed_rejections(page)
    assert shown and shown <= audited_rejections(out)
    link = page.locator("#mlflow-link")
    assert link.get_attribute("href").startswith("http://127.0.0.1:5000/#/experiments/")
    screenshot(page, "tournament", tmp_path)


def test_a_replay_looks_like_the_live_run_and_can_pause_and_seek(
    tournament: tuple[str, Path], page: Any, tmp_path: Path
) -> None:
    _, out = tournament
    replay = subprocess.Popen(
        [sys.executable, "-m", "arena_rl", "live", "replay", str(out), "--tournament", "1",
         "--port", "0", "--for-s", "300"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert replay.stdout is not None
        url = replay.stdout.readline().split()[2]
        page.goto(url.replace("speed=4", "speed=64"))
        wait_for_every_arm(page, ["control_arm", *AGENTS])
        page.wait_for_function("() => window.arenaLive.ended", timeout=60_000)
        assert page.locator("#replay-controls").is_visible()
        live = {r for r in audited_rejections(out) if r[0] == 1}
        assert feed_rejections(page) == live
        screenshot(page, "replay", tmp_path)
        # seek back to day 10 at 1 day/s and pause: the lines stop short of the horizon
        page.select_option("#speed", "1")
        page.locator("#seek").fill("10")
        page.locator("#seek").dispatch_event("change")
        page.wait_for_function("() => (window.arenaLive.points['pid'] || 0) >= 10")
        page.click("#pause")
        paused = page.evaluate("() => window.arenaLive.points['pid']")
        page.wait_for_timeout(2500)
        assert page.evaluate("() => window.arenaLive.points['pid']") == paused < 28
    finally:
        replay.send_signal(signal.SIGINT)
        replay.communicate(timeout=30)


def test_the_served_experiment_is_watched_and_agent_text_never_runs(
    page: Any, tmp_path: Path
) -> None:
    with serve() as served:
        served.advance(2)
        with Agent(served.url, served.token("Alpha")) as alpha:
            answer = alpha.act(ConfigUpdate({"noSuchKnob": 1.0}, reasoning=HOSTILE))
            assert answer.rejection_reason == "INVALID_UPDATE"
            alpha.act(ConfigUpdate({"scanXp": 11.0}, reasoning=f"fine {HOSTILE}"))
        served.advance(3)
        page.goto(served.url + "/live/")
        wait_for_every_arm(page, ["Control", "Alpha", "Beta"])
        rejected = page.locator('.feed-item[data-outcome="rejected"][data-code="INVALID_UPDATE"]')
        rejected.first.wait_for(timeout=30_000)
        assert rejected.first.get_attribute("data-arm") == "Alpha"
        audit = served.call("GET", "/api/arena/decisions", served.token("Alpha")).json()
        codes = [d.get("rejectionCode") for d in audit["data"]["decisions"]]
        assert codes.count("INVALID_UPDATE") == rejected.count() == 1  # the audit log's one
        reasons = page.locator('.reason-item[data-agent="Alpha"]')
        reasons.first.wait_for(timeout=30_000)
        assert "<script>" in reasons.first.inner_text()  # shown as text ...
        assert page.evaluate("() => window.pwned") is None  # ... and never run
        assert page.locator('img[src="x"]').count() == 0
        screenshot(page, "served", tmp_path)
