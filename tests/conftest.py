"""Suite-wide set-up: arena_rl's caches (LLM answers, ground truth, model probes) live in a fresh
folder per test session, so no test is served results cached by an earlier session or by the
user's own runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from arena_rl.core.disk_cache import CACHE_ENV as ROOT_ENV
from arena_rl.llm.backends import smollm2_path
from arena_rl.llm.cache import CACHE_ENV


@pytest.fixture(autouse=True, scope="session")
def _fresh_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    root = tmp_path_factory.mktemp("arena_rl_cache")
    fresh = {CACHE_ENV: str(root / "answers.sqlite"), ROOT_ENV: str(root)}
    previous = {name: os.environ.get(name) for name in fresh}
    os.environ.update(fresh)  # in os.environ, not monkeypatch: subprocesses and Ray inherit it
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on a free localhost port, serving the same
    GGUF file as the local backend."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path())]
    command += ["--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--n_ctx", "2048", "--n_threads", "2"]
    with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
