"""What a model call costs: the one price table, and the estimates and caps built on it.

The table (``conf/llm_prices.yaml``) lists USD per million prompt and completion tokens by
backend and model; ``"*"`` prices every model of a backend (the local one is free). A cost is
estimated *before* a call from the request's length and its ``max_tokens``, so a
:class:`Budget` can refuse a call that could take the spend past its cap: no spend beyond the
cap, ever, even when the answer turns out shorter than feared.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PRICES_FILE = Path(__file__).resolve().parents[1] / "conf" / "llm_prices.yaml"
"""The shipped price table."""

CHARS_PER_TOKEN = 3.0
"""A cautious tokens-from-text estimate (English runs about 4 characters a token; fewer
characters a token means more tokens, so an estimate errs on the side of cost)."""


class PriceError(ValueError):
    """A price table that cannot be read or holds a negative or missing price."""


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    prompt: float
    completion: float

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


class PriceTable:
    """Prices by backend and model, read from a YAML file (default: the shipped one)."""

    def __init__(self, table: Mapping[str, Mapping[str, Price]], source: str) -> None:
        self.table, self.source = table, source

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        return _load(str(Path(path).expanduser()) if path else str(PRICES_FILE))

    def price(self, backend: str, model: str) -> Price | None:
        """The model's price; the backend's ``"*"`` price when it is not listed; else None."""
        models = self.table.get(backend, {})
        return models.get(model, models.get("*"))

    def models(self) -> list[str]:
        """Every model listed by name (wildcards excluded), over all backends."""
        return sorted({m for models in self.table.values() for m in models if m != "*"})


@cache
def _load(path: str) -> PriceTable:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PriceError(f"price table {path}: cannot read it ({exc})") from exc
    if not isinstance(data, Mapping):
        raise PriceError(f"price table {path}: expected backend -> model -> prices")
    table: dict[str, dict[str, Price]] = {}
    for backend, models in data.items():
        if not isinstance(models, Mapping):
            raise PriceError(f"price table {path}: {backend}: expected model -> prices")
        for model, entry in models.items():
            where = f"price table {path}: {backend}.{model}"
            if not isinstance(entry, Mapping) or set(entry) != {"prompt", "completion"}:
                raise PriceError(f"{where}: expected {{prompt: USD, completion: USD}}")
            values = [entry["prompt"], entry["completion"]]
            if not all(isinstance(v, int | float) and v >= 0 for v in values):
                raise PriceError(f"{where}: prices must be numbers >= 0, got {dict(entry)}")
            table.setdefault(str(backend), {})[str(model)] = Price(*map(float, values))
    return PriceTable(table, path)


def known_model(name: str, path: str | Path | None = None) -> bool:
    """Whether the price table lists this model by name (under any backend)."""
    return name in PriceTable.load(path).models()


def estimate_tokens(text: str) -> int:
    """A cautious count of the tokens in ``text`` (see :data:`CHARS_PER_TOKEN`)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class BudgetExhausted(RuntimeError):  # noqa: N818 -- a state reached, not a failure
    """The next call could take the spend past the budget's cap; it was not made."""


class Budget:
    """A spending cap in USD shared by every call charged to it (thread-safe).

    :meth:`reserve` takes a call's worst-case cost before it is made and refuses it when that
    could pass the cap; :meth:`settle` replaces the reservation with what it really cost.

    Args:
        cap_usd: the most that may be spent; must be above 0.
    """

    def __init__(self, cap_usd: float) -> None:
        if not cap_usd > 0:
            raise ValueError(f"budget_usd must be above 0, got {cap_usd}")
        self.cap_usd = float(cap_usd)
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.refused = 0
        """Calls refused because they could have passed the cap."""
        self._lock = threading.Lock()

    def reserve(self, worst_usd: float) -> None:
        with self._lock:
            if math.isnan(worst_usd) or (
                self.spent_usd + self.reserved_usd + worst_usd > self.cap_usd
            ):
                self.refused += 1
                why = (
                    "the model has no price"
                    if math.isnan(worst_usd)
                    else f"the next call could cost ${worst_usd:.4f}"
                )
                raise BudgetExhausted(
                    f"budget of ${self.cap_usd:g} reached: spent ${self.spent_usd:.4f}; {why}"
                )
            self.reserved_usd += worst_usd

    def settle(self, worst_usd: float, actual_usd: float) -> None:
        with self._lock:
            self.reserved_usd -= worst_usd
            self.spent_usd += actual_usd

    @property
    def exhausted(self) -> bool:
        return self.refused > 0
