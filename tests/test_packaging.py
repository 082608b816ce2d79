"""A user's plain install: ``pip install .`` (not editable) into a fresh venv brings no torch
and no llama.cpp, ships the presets, runs a tournament from any folder, and refuses an agent
whose extra is missing with the line that installs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arena_rl.config import EXTRAS, ConfigError, build_agent

ROOT = Path(__file__).resolve().parents[1]


def test_an_agent_whose_package_is_missing_is_refused_with_the_install_line() -> None:
    # a target in a module that imports a package this machine lacks, as ppo.py imports torch
    with pytest.raises(ConfigError) as caught:
        build_agent("ghost", {"_target_": "surely_not_installed_pkg.Agent"})
    assert "cannot build it" in str(caught.value)  # unknown packages: no install line to give
    for module, (extra, line) in EXTRAS.items():
        assert extra in ("ppo", "llm") and "pip install" in line, module


@pytest.mark.slow
def test_plain_install_runs_from_another_folder_and_refuses_ppo(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.lower()
    assert "torch==" not in listed and "llama" not in listed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def tournament(*overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), "-m", "arena_rl", "tournament", *overrides, "tracking.enabled=false"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=elsewhere,
        )

    done = tournament(
        "+agents=[ucb,rule]",
        "tournament.n_tournaments=2",
        "tournament.days=6",
        "population.n_users=900",
        "ray.num_workers=1",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "ucb" in done.stdout and "rule" in done.stdout  # the leaderboard
    assert (elsewhere / "outputs").is_dir()  # Hydra's run folder, where the user is
    shipped = subprocess.run(
        [str(python), "-c", "from arena_rl.live.page import STATIC; "
         "print(' '.join(sorted(p.name for p in STATIC.iterdir())))"],
        capture_output=True, text=True, cwd=elsewhere,
    ).stdout.split()  # fmt: skip
    assert {"index.html", "live.js", "uPlot.iife.min.js", "LICENSE-uPlot.txt"} <= set(shipped)
    refused = tournament("+agents=[ucb,ppo]")
    assert refused.returncode == 2
    assert "agents.ppo needs torch" in refused.stderr
    assert "pip install torch==2.13.0" in refused.stderr
