"""A local model's first answer, given in a child process, so that a native crash is an error.

llama.cpp is native code. A build tuned to another CPU, or a CPU backend with a bug (its AMX
path on some Xeons in VMs), dies with SIGSEGV or SIGILL on the first call and takes the whole
process with it: no exception, no message, no result. So before a process first uses a local
model, a child process loads it and answers once; a crash there becomes a
:class:`~arena_rl.llm.backends.BackendError` naming the backend, how the child died, this CPU's
features, the build's features and the fix. A passing probe is remembered on disk, keyed by the
library build, the model file, the CPU and the interpreter, so reruns and Ray workers skip it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import platform
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FIRST_ANSWER = "arena_rl.llm.probe:first_answer"
"""What the probe runs in the child: load the model, answer one JSON question."""

CPU_FEATURES = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
    "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
)  # fmt: skip
"""The instruction sets llama.cpp's CPU backends choose between (as /proc/cpuinfo names them)."""

PORTABLE_REINSTALL = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir --no-deps '
    '"llama-cpp-python[server]"'
)
"""Rebuilds llama.cpp with no CPU-specific backend (AVX2 is the newest instruction set it uses)."""

_CHILD = """
import json, sys
module, _, name = sys.argv[1].partition(":")
getattr(__import__(module, fromlist=[name]), name)(**json.loads(sys.argv[2]))
"""


class ContainedCallError(Exception):
    """A contained call that did not finish.

    Args:
        how: how the child ended, e.g. ``killed by SIGSEGV``, ``exit code 1``, ``no answer in
            60 s``.
        output: the child's last lines of standard error.
    """

    def __init__(self, how: str, output: str) -> None:
        super().__init__(f"{how}: {output}" if output else how)
        self.how, self.output = how, output


def run_contained(target: str, kwargs: Mapping[str, Any], timeout_s: float) -> str:
    """Call ``module:function(**kwargs)`` in a fresh interpreter and return what it printed.

    Raises:
        ContainedCallError: the child crashed (a signal), raised (non-zero exit) or hung.
    """
    command = [sys.executable, "-X", "faulthandler", "-c", _CHILD, target, json.dumps(kwargs)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise ContainedCallError(f"no answer in {timeout_s:g} s", _tail(exc.stderr)) from None
    if done.returncode == 0:
        return done.stdout
    if done.returncode < 0:
        how = f"killed by {signal.Signals(-done.returncode).name}"
    else:
        how = f"exit code {done.returncode}"
    raise ContainedCallError(how, _tail(done.stderr))


def first_answer(model_path: str, n_ctx: int, n_threads: int) -> None:
    """Load the model and answer one schema-held question, as the agent does (runs in the
    child). The build's features go to stderr first, so a crash report can show them."""
    import llama_cpp

    print("llama.cpp build:", llama_cpp.llama_print_system_info().decode(), file=sys.stderr)
    sys.stderr.flush()
    model = llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    model.create_chat_completion(
        messages=[{"role": "user", "content": "Answer ok."}],
        response_format={"type": "json_object", "schema": schema},
        max_tokens=8,
    )
    print("ok")


def cpu_description() -> str:
    """This CPU's model name and the instruction sets llama.cpp cares about."""
    name, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            field, _, value = line.partition(":")
            if field.strip() == "model name":
                name = value.strip()
            elif field.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        return name
    present = [f for f in CPU_FEATURES if f in flags]
    return f"{name}; features: {' '.join(present) or 'none of ' + ', '.join(CPU_FEATURES)}"


def _library_files() -> list[Path]:
    """llama-cpp-python's shared libraries, found without loading them."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(
        p for folder in spec.submodule_search_locations for p in Path(folder).rglob("*.so*")
    )


def probe_key(model_path: Path, n_ctx: int, n_threads: int) -> str:
    """What a passing probe vouches for: library build, model file, settings, CPU, Python."""
    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    files = [*_library_files(), model_path]
    stamp = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists()]
    parts = [version, stamp, n_ctx, n_threads, cpu_description(), sys.executable]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def probe_local_model(
    model_path: Path,
    n_ctx: int,
    n_threads: int,
    record_dir: Path,
    *,
    target: str = FIRST_ANSWER,
    timeout_s: float = 300.0,
) -> bool:
    """Make sure the model loads and answers here without crashing the process.

    Returns:
        True when a child process ran the probe now, False when an earlier pass was on record.

    Raises:
        ContainedCallError: re-raised by the caller as a BackendError with :func:`crash_advice`.
    """
    record = record_dir / f"{probe_key(model_path, n_ctx, n_threads)}.ok"
    if record.exists():
        return False
    kwargs = {"model_path": str(model_path), "n_ctx": n_ctx, "n_threads": n_threads}
    run_contained(target, kwargs, timeout_s)
    record_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(cpu_description() + "\n")
    return True


def crash_advice(failure: ContainedCallError, model_path: Path) -> str:
    """The message for a failed probe: what died, on what CPU, and what to do."""
    lines = [
        f"backend local: llama.cpp failed to load {model_path.name} and answer once in a child "
        f"process ({failure.how}); nothing was run.",
        f"CPU: {cpu_description()}",
    ]
    if failure.output:
        lines.append(f"last output: {failure.output}")
    if failure.how.startswith("killed by"):
        lines.append(
            "A native crash usually means llama-cpp-python was built for another CPU, or with a "
            "CPU backend (such as AMX) that fails here. Rebuild it for any x86-64 CPU:\n    "
            + PORTABLE_REINSTALL
            + "\nor use a hosted backend: agents.llm.backend=openai (or anthropic) with a model."
        )
    return "\n".join(lines)


def _tail(text: str | bytes | None, lines: int = 6) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " | ".join((text or "").strip().splitlines()[-lines:])
