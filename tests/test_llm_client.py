"""The model call path without a model: cache keys, the shared store, retries, rate limit and
the errors a user meets before a tournament starts."""

from __future__ import annotations

import multiprocessing
import pickle
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from arena_rl.config import ConfigError, compose_config, settings_from
from arena_rl.llm import BackendError, LLMClient, ResponseCache, Sampling, cache_key, make_backend
from arena_rl.llm.backends import AnthropicBackend, LocalBackend, OpenAIBackend
from arena_rl.llm.cache import CachedAnswer, default_cache_path
from arena_rl.llm.client import _RateLimiter
from arena_rl.llm.prices import (
    Budget,
    BudgetExhausted,
    Price,
    PriceError,
    PriceTable,
    known_model,
)

REQUEST = {
    "backend": "local",
    "model": "m.gguf:1",
    "messages": [{"role": "user", "content": "hi"}],
    "schema": {"type": "object"},
    "sampling": {"temperature": 0.0, "max_tokens": 10, "seed": 0},
}


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("part", "other"),
    [
        ("backend", "openai"),
        ("model", "m.gguf:2"),
        ("messages", [{"role": "user", "content": "hi!"}]),
        ("schema", {"type": "array"}),
        ("sampling", {"temperature": 0.0, "max_tokens": 10, "seed": 1}),
    ],
)
def test_cache_key_changes_with_every_part_of_the_request(part: str, other: object) -> None:
    assert cache_key(REQUEST) != cache_key({**REQUEST, part: other})


def test_cache_key_ignores_dict_order() -> None:
    reordered = dict(reversed(list(REQUEST.items())))
    assert cache_key(reordered) == cache_key(REQUEST)


def _writer(path: str, start: int, n: int) -> None:
    cache = ResponseCache(path)
    for i in range(start, start + n):
        cache.put(f"k{i}", CachedAnswer(f"answer {i}", i, 1, 0.1))
        assert cache.get(f"k{i}") is not None


def test_cache_is_shared_safely_by_concurrent_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    # four processes, overlapping key ranges: 0-299, 100-399, 200-499, 300-599
    procs = [
        multiprocessing.get_context("spawn").Process(target=_writer, args=(path, 100 * w, 300))
        for w in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    cache = ResponseCache(path)
    assert len(cache) == 600
    hit = cache.get("k42")
    assert hit is not None and hit.text == "answer 42" and hit.prompt_tokens == 42


def test_cache_opened_on_one_thread_serves_any_other(tmp_path: Path) -> None:
    """An agent's decisions run on its tournament's sandbox thread, a new one per tournament,
    while the process keeps one cache: the connection must not be tied to its first thread
    (SQLite's default refuses, and every later decision of the agent failed)."""
    cache = ResponseCache(tmp_path / "threads.sqlite")
    cache.put("k0", CachedAnswer("first", 1, 1, 0.1))  # opened on this thread

    def worker(w: int) -> None:
        for i in range(50):
            cache.put(f"w{w}-{i}", CachedAnswer(str(i), i, i, 0.0))
            assert cache.get(f"w{w}-{i}") is not None

    with ThreadPoolExecutor(4) as pool:  # several threads at once: the lock serialises them
        list(pool.map(worker, range(4)))
    assert len(cache) == 201
    hit = cache.get("k0")
    assert hit is not None and hit.text == "first"
    copy = pickle.loads(pickle.dumps(cache))  # into another process: a fresh lock, no connection
    assert len(copy) == 201


def test_default_cache_path_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARENA_RL_LLM_CACHE", str(tmp_path / "mine.sqlite"))
    assert default_cache_path() == tmp_path / "mine.sqlite"
    monkeypatch.delenv("ARENA_RL_LLM_CACHE")
    monkeypatch.setenv("ARENA_RL_CACHE", str(tmp_path / "root"))  # arena_rl's cache folder
    assert default_cache_path() == tmp_path / "root" / "llm_cache.sqlite"
    monkeypatch.delenv("ARENA_RL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / "arena_rl" / "llm_cache.sqlite"


def test_transient_failures_are_retried_with_backoff_then_reported() -> None:
    # a real connection failure: an OpenAI-compatible endpoint on a port nobody listens on
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    client = LLMClient(backend, None, max_retries=2, backoff_s=0.05)
    started = time.perf_counter()
    with pytest.raises(BackendError, match="gave up after 2 retries"):
        client.complete([{"role": "user", "content": "hi"}], {"type": "object"}, Sampling())
    assert client.usage.retries == 2
    assert client.usage.calls == 0  # nothing answered, nothing counted as a call
    assert time.perf_counter() - started >= 0.05 + 0.10  # backoff doubles


def test_rate_limiter_spaces_calls_per_backend() -> None:
    started = time.perf_counter()
    for _ in range(4):
        _RateLimiter.wait("test-backend-a", per_minute=240)  # one call per 0.25 s
    assert time.perf_counter() - started >= 0.74
    quick = time.perf_counter()
    _RateLimiter.wait("test-backend-b", per_minute=240)  # another backend has its own slots
    _RateLimiter.wait("test-backend-c", per_minute=None)
    assert time.perf_counter() - quick < 0.1


def test_token_rate_limit_holds_a_call_that_would_pass_it() -> None:
    quick = time.perf_counter()
    for _ in range(3):  # 600 tokens a minute: three calls of 200 fit at once
        _RateLimiter.wait("test-backend-t", None, tokens_per_minute=600, tokens=200)
    assert time.perf_counter() - quick < 0.1
    fourth = threading.Thread(
        target=_RateLimiter.wait, args=("test-backend-t", None, 600, 200), daemon=True
    )
    fourth.start()
    fourth.join(0.5)
    assert fourth.is_alive()  # it waits for the minute to clear


def test_a_budget_refuses_a_call_that_could_pass_its_cap_before_making_it() -> None:
    # the endpoint is down: a call that were made would fail with a BackendError instead
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    budget = Budget(0.001)
    client = LLMClient(
        backend, None, price=Price(prompt=1000.0, completion=1000.0), budget=budget, max_retries=0
    )
    with pytest.raises(BudgetExhausted, match=r"budget of \$0.001 reached"):
        client.complete([{"role": "user", "content": "hi"}], {"type": "object"}, Sampling())
    assert budget.refused == 1 and budget.spent_usd == 0.0 and budget.reserved_usd == 0.0
    unpriced = LLMClient(backend, None, price=None, budget=Budget(1.0))
    with pytest.raises(BudgetExhausted, match="no price"):  # an unknown cost is never risked
        unpriced.complete([{"role": "user", "content": "hi"}], {"type": "object"}, Sampling())
    affordable = LLMClient(backend, None, price=Price(0.0, 0.0), budget=Budget(1.0), max_retries=0)
    with pytest.raises(BackendError):  # within budget: asked; a failed call costs nothing
        affordable.complete([{"role": "user", "content": "hi"}], {"type": "object"}, Sampling())
    assert affordable.budget is not None and affordable.budget.reserved_usd == 0.0


def test_budget_reservations_settle_to_what_calls_cost() -> None:
    budget = Budget(1.0)
    budget.reserve(0.6)
    with pytest.raises(BudgetExhausted):  # 0.6 reserved + 0.5 could pass 1.0
        budget.reserve(0.5)
    budget.settle(0.6, 0.2)
    budget.reserve(0.5)  # 0.2 spent + 0.5 fits
    assert budget.spent_usd == pytest.approx(0.2) and budget.reserved_usd == pytest.approx(0.5)
    with pytest.raises(ValueError, match="budget_usd"):
        Budget(0.0)


def test_the_price_table_prices_models_by_backend(tmp_path: Path) -> None:
    table = PriceTable.load()
    assert table.price("openai", "gpt-4o-mini") == Price(0.15, 0.60)
    assert table.price("local", "any-model.gguf") == Price(0.0, 0.0)  # your own machine
    assert table.price("openai", "no-such-model") is None
    assert known_model("claude-haiku-4-5") and not known_model("no-such-model")
    bad = tmp_path / "prices.yaml"
    bad.write_text("openai: {m: {prompt: -1, completion: 2}}\n")
    with pytest.raises(PriceError, match=r"openai\.m"):
        PriceTable.load(bad)


def test_cached_answers_cost_nothing_and_count_as_hits(tmp_path: Path) -> None:
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    cache = ResponseCache(tmp_path / "c.sqlite")
    client = LLMClient(backend, cache, max_retries=0)
    messages, schema = [{"role": "user", "content": "hi"}], {"type": "object"}
    cache.put(client.key(messages, schema, Sampling()), CachedAnswer('{"a": 1}', 5, 2, 0.5))
    assert client.complete(messages, schema, Sampling()) == '{"a": 1}'  # the endpoint is down
    assert client.usage.cache_hits == 1 and client.usage.calls == 0
    with pytest.raises(BackendError):  # other sampling settings: not cached, so it is asked
        client.complete(messages, schema, Sampling(seed=1))


def test_missing_api_keys_name_the_variable(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini").check()
    with pytest.raises(BackendError, match="MY_KEY"):
        OpenAIBackend(
            "gpt-4o-mini", base_url="https://example.invalid/v1", api_key_env="MY_KEY"
        ).check()
    with pytest.raises(BackendError, match="ANTHROPIC_API_KEY"):
        AnthropicBackend("claude-haiku-4-5").check()


def test_unreachable_endpoint_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(BackendError, match="cannot reach"):
        OpenAIBackend("m", base_url=url).check()  # localhost needs no key


def test_bad_backend_settings_fail_early() -> None:
    with pytest.raises(BackendError, match="one of"):
        make_backend("gemini", model="x")
    with pytest.raises(BackendError, match="model name"):
        make_backend("openai")
    with pytest.raises(BackendError, match="does not exist"):
        LocalBackend(model_path="/nonexistent/model.gguf").check()


def test_tournament_config_with_unreachable_endpoint_fails_before_any_work(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url = f"http://127.0.0.1:{closed_port()}/v1"
    cfg = compose_config(
        [
            "+agents=[llm]",
            "agents.llm.backend=openai",
            "agents.llm.model=m",
            f"agents.llm.base_url={url}",
        ]
    )
    with pytest.raises(ConfigError, match=r"agents\.llm.*cannot reach"):
        settings_from(cfg)
    cfg = compose_config(["+agents=[llm]", "agents.llm.backend=anthropic", "agents.llm.model=m"])
    with pytest.raises(ConfigError, match=r"agents\.llm.*ANTHROPIC_API_KEY"):
        settings_from(cfg)
