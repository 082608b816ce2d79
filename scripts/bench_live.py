"""Does watching slow the work? A tournament set's wall time with the live page off, on with
no browser, and on with a real headless Chromium showing it.

    python scripts/bench_live.py [--tournaments 16] [--repeats 3] [--workers 2]

The three modes take turns (so drift on a busy machine hits each alike); the median of each is
printed with its difference from "off". Needs Debian's chromium (``/usr/bin/chromium``) and the
playwright package (the dev extra) for the browser mode.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ray

from arena_rl.config import build_agent, compose_config, settings_from
from arena_rl.live.hub import Hub
from arena_rl.live.page import start_page
from arena_rl.tournament import runner
from arena_rl.tournament.live_report import LiveReport

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_cpu_s() -> float:
    """CPU seconds used so far by every Chromium process on this machine (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if "chrom" not in Path(f"/proc/{pid}/comm").read_text():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tournaments", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--agents", default="ucb,thompson,rule,pid")
    args = parser.parse_args()
    overrides = [f"+agents=[{args.agents}]", f"tournament.n_tournaments={args.tournaments}"]
    settings = settings_from(compose_config(overrides))
    ray.init(address="local", num_cpus=max(args.workers, 1), include_dashboard=False)
    from playwright.sync_api import sync_playwright

    browser_cpu: list[float] = []
    inside: dict[str, list[float]] = {"off": [], "page": [], "browser": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def timed(mode: str) -> float:
            out = Path(tempfile.mkdtemp(prefix=f"bench-live-{mode}-"))
            report = page = tab = None
            if mode != "off":
                hub = Hub()
                report = LiveReport(hub, len(settings.specs), settings.seed)
                page = start_page(hub)
                if mode == "browser":
                    tab = browser.new_page(viewport={"width": 1600, "height": 1000})
                    tab.goto(page.url)
            page_cpu = chromium_cpu_s()
            started = time.perf_counter()
            outcome = runner.run_tournaments(
                settings.specs, out, build_agent, num_workers=args.workers, progress=False,
                live=report,
            )  # fmt: skip
            took = time.perf_counter() - started
            inside[mode].append(outcome.play_s)
            if mode == "browser":
                browser_cpu.append(chromium_cpu_s() - page_cpu)
            if report is not None and page is not None:
                report.end("FINISHED", None, [])
                if tab is not None:
                    tab.wait_for_function(
                        "() => window.arenaLive && window.arenaLive.ended", timeout=60_000
                    )
                    tab.close()
                page.stop()
            return took

        modes: dict[str, Callable[[], float]] = {
            m: (lambda m=m: timed(m)) for m in ("off", "page", "browser")
        }
        timed("off")  # warm: workers' imports, the ground-truth cache
        times: dict[str, list[float]] = {m: [] for m in modes}
        browser_cpu.clear()
        for values in inside.values():
            values.clear()
        for r in range(args.repeats):
            order = list(modes)[r % 3 :] + list(modes)[: r % 3]
            for mode in order:
                times[mode].append(modes[mode]())
        browser.close()
    ray.shutdown()
    base = statistics.median(times["off"])
    print(f"{args.tournaments} tournaments ({args.agents}; {settings.specs[0].n_users} users, "
          f"{settings.specs[0].days} days) on {args.workers} Ray workers, "
          f"{args.repeats} runs each; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    labels = {"off": "live page off", "page": "page on, no browser",
              "browser": "page on, Chromium watching"}  # fmt: skip
    for mode, values in times.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{labels[mode]:>28}: {median:6.2f} s median ({runs})  {median / base - 1:+6.1%}"
              f"; inside tournaments {statistics.median(inside[mode]):.2f} s")  # fmt: skip
    cpu = statistics.median(browser_cpu)
    print(f"Chromium's CPU while watching: {cpu:.2f} s median per run, "
          f"{cpu / statistics.median(times['browser']):.1%} of one core")  # fmt: skip


if __name__ == "__main__":
    main()
