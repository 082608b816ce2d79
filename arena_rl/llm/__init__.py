"""Language-model plumbing for LLM agents: backends, the answer cache and the call path."""

from arena_rl.llm.backends import (
    BACKENDS,
    Backend,
    BackendError,
    Completion,
    Sampling,
    TransientBackendError,
    make_backend,
    smollm2_path,
)
from arena_rl.llm.cache import ResponseCache, cache_key, default_cache_path
from arena_rl.llm.client import LLMClient, Usage

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Completion",
    "LLMClient",
    "ResponseCache",
    "Sampling",
    "TransientBackendError",
    "Usage",
    "cache_key",
    "default_cache_path",
    "make_backend",
    "smollm2_path",
]
