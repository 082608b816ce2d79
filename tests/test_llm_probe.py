"""A native crash of the local backend is an error that says what to do, never silence.

The crashes here are real: a child process dereferences a null pointer (SIGSEGV) or aborts
(SIGABRT). What is induced is only *where*: the probe's target is pointed at the crash, since no
llama.cpp build that crashes is installed here (the portable build is the fix).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from arena_rl.llm import BackendError, backends
from arena_rl.llm.backends import LocalBackend
from arena_rl.llm.probe import (
    PORTABLE_REINSTALL,
    ContainedCallError,
    cpu_description,
    probe_local_model,
    run_contained,
)

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
SEGFAULT = "ctypes:string_at"  # string_at(0) reads address 0: a real SIGSEGV
NULL = {"ptr": 0}


def test_a_segfault_in_the_child_is_reported_with_its_signal() -> None:
    with pytest.raises(ContainedCallError) as caught:
        run_contained(SEGFAULT, NULL, timeout_s=60)
    assert caught.value.how == f"killed by {signal.SIGSEGV.name}"
    assert "Fatal Python error" in caught.value.output  # faulthandler's report from the child


def test_an_exception_and_a_hang_in_the_child_are_reported() -> None:
    with pytest.raises(ContainedCallError, match="exit code 1") as caught:
        run_contained("json:loads", {"s": "{"}, timeout_s=60)
    assert "JSONDecodeError" in caught.value.output
    with pytest.raises(ContainedCallError, match="no answer in 1 s"):
        run_contained("subprocess:run", {"args": ["sleep", "30"]}, timeout_s=1)


def test_the_parent_survives_and_gets_the_output_of_a_clean_child() -> None:
    assert run_contained("builtins:print", {"end": "ok\n"}, timeout_s=60) == "ok\n"


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


@pytest.mark.skipif(not HAS_LLAMA, reason="needs the llm extra")
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/cpuinfo")
def test_backend_check_turns_a_native_crash_into_advice(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARENA_RL_LLM_CACHE", str(tmp_path / "cache" / "answers.sqlite"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the child finds the crasher
    monkeypatch.setattr(backends, "_MODELS", {})  # as in a fresh process: no model running yet
    backend = LocalBackend(str(model_file))
    monkeypatch.setattr(backend, "probe_target", "crashing_model:first_answer")
    with pytest.raises(BackendError) as caught:
        backend.check()
    message = str(caught.value)
    assert "backend local" in message and model_file.name in message
    assert "killed by SIGSEGV" in message
    assert cpu_description() in message and "features:" in message
    assert PORTABLE_REINSTALL in message and "backend=openai" in message
    assert not (tmp_path / "cache" / "probes").exists()  # a failed probe is not remembered


def test_a_passing_probe_is_remembered_and_not_run_again(tmp_path: Path, model_file: Path) -> None:
    records = tmp_path / "probes"
    # a child that answers without loading anything: stands in for a model that works
    assert probe_local_model(model_file, 64, 1, records, target="builtins:dict") is True
    assert len(list(records.iterdir())) == 1
    assert probe_local_model(model_file, 64, 1, records, target="os:abort") is False
    model_file.write_bytes(b"GGUF" + bytes(61))  # another file: the record no longer vouches
    with pytest.raises(ContainedCallError):
        probe_local_model(model_file, 64, 1, records, target="os:abort")


@pytest.mark.skipif(not HAS_LLAMA, reason="needs the llm extra")
def test_tournament_dry_run_names_the_agent_when_the_model_cannot_load(tmp_path: Path) -> None:
    """A file that is not a model: the probe's child fails to load it, and the script stops
    before Ray starts, naming agents.llm and the reason."""
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + bytes(1000))
    done = subprocess.run(
        [
            sys.executable,
            "scripts/tournament.py",
            "+agents=[llm]",
            f"agents.llm.model_path={bad}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "tracking.enabled=false",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ARENA_RL_LLM_CACHE": str(tmp_path / "c.sqlite")},
        cwd=Path(__file__).resolve().parents[1],
    )
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "error: agents.llm" in out and "broken.gguf" in out and "exit code" in out
