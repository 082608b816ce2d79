"""Hostile input against a real server over TCP: nothing an agent sends may poison the state.

Each reproduced failure has its own test (deep ``signals``, a lone surrogate in a key, a chunked
body past the limit, a crash on a keep-alive connection, huge numbers and NaN); then Hypothesis
throws the whole input surface at the server, and after every request every read endpoint must
still answer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import Served, get_request, raw_exchange, rss_bytes, serve

from arena_rl.server.boundary import MAX_BODY_BYTES, MAX_DEPTH, BodyError, parse_body

CONFIG = "/api/arena/variant/config"
JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve() as s:
        s.advance(2)
        yield s


def _nested(depth: int, leaf: str = "1", kind: str = "dict") -> str:
    """``depth`` levels of objects (or arrays) around ``leaf``, as JSON text."""
    if kind == "dict":
        return '{"a":' * depth + leaf + "}" * depth
    return "[" * depth + leaf + "]" * depth


def _put(served: Served, name: str, body: str | bytes) -> httpx.Response:
    return served.call("PUT", CONFIG, served.token(name), content=body, headers=JSON_HEADERS)


def _reads_answer(served: Served) -> None:
    """Every read endpoint, for every token, answers 200 with JSON that re-encodes strictly."""
    admin = served.runtime.tokens.admin_token
    paths = [
        "/api/arena/variant",
        "/api/arena/signals",
        "/api/arena/scoreboard",
        "/api/arena/decisions?pageSize=100",
    ]
    for name in ("Alpha", "Beta", "Control"):
        for path in paths:
            response = served.call("GET", path, served.token(name))
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
            json.dumps(response.json(), allow_nan=False).encode("utf-8")
    state = served.call("GET", "/api/arena/admin/state", admin)
    assert state.status_code == 200, state.text[:300]


# ---- the reproduced failures ------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH, 600, 900, 5000, 100_000])
def test_deeply_nested_signals_are_refused_before_they_are_stored(
    served: Served, depth: int
) -> None:
    before = served.call("GET", "/api/arena/decisions", served.token("Alpha")).json()["data"]
    body = '{"economyOverrides": {"scanXp": 11}, "signals": ' + _nested(depth) + "}"
    response = _put(served, "Alpha", body)
    assert response.status_code == 422, response.text[:300]
    assert f"nested deeper than {MAX_DEPTH}" in response.json()["error"]
    after = served.call("GET", "/api/arena/decisions", served.token("Alpha"))
    assert after.status_code == 200 and after.json()["data"]["total"] == before["total"]
    _reads_answer(served)


def test_nesting_up_to_the_limit_is_stored_and_read_back(served: Served) -> None:
    signals = json.loads(_nested(MAX_DEPTH - 2, kind="list"))  # the body and signals: 2 more
    body = json.dumps({"economyOverrides": {"scanXp": 11}, "signals": {"deep": signals}})
    assert _put(served, "Beta", body).status_code == 200
    latest = served.call("GET", "/api/arena/decisions", served.token("Beta")).json()["data"]
    assert latest["decisions"][0]["signals"] == {"deep": signals}


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (b'{"economyOverrides": {"scan\\udfffXp": 11}}', 422, "lone surrogate"),
        (b'{"economyOverrides": {"scanXp": 11}, "reasoning": "\\ud800"}', 422, "reasoning"),
        (b'{"economyOverrides": {"scan\xed\xbf\xbfXp": 11}}', 400, "not UTF-8"),
        (b'{"economyOverrides": {}, "signals": {"k": ["\\udc80"]}}', 422, "signals.k.0"),
    ],
)
def test_lone_surrogates_are_refused_not_logged(
    served: Served, raw: bytes, status: int, says: str
) -> None:
    before = served.call("GET", "/api/arena/decisions", served.token("Beta")).json()["data"]
    response = _put(served, "Beta", raw)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]
    after = served.call("GET", "/api/arena/decisions", served.token("Beta"))
    assert after.status_code == 200 and after.json()["data"]["total"] == before["total"]
    # a surrogate *pair* is just an astral character, and fine
    pair = b'{"economyOverrides": {}, "reasoning": "\\ud83d\\ude00"}'
    assert _put(served, "Beta", pair).is_success
    _reads_answer(served)


@pytest.mark.parametrize(
    ("value", "status", "says"),
    [
        ("1" + "0" * 400, 422, "out of range"),
        ("1" + "0" * 5000, 422, "out of range"),
        ("-1e400", 422, "economyOverrides.scanXp: number -1e400 is out of range"),
        ("NaN", 400, "economyOverrides.scanXp: NaN is not JSON"),
        ("Infinity", 400, "Infinity is not JSON"),
    ],
)
def test_numbers_must_be_finite_doubles(served: Served, value: str, status: int, says: str) -> None:
    response = _put(served, "Alpha", '{"economyOverrides": {"scanXp": ' + value + "}}")
    assert response.status_code == status, response.text
    assert says in response.json()["error"]
    # the strings "NaN" and "inf" are JSON: the guardrails refuse them as INVALID_UPDATE
    response = _put(served, "Alpha", '{"economyOverrides": {"scanXp": "NaN"}}')
    code = response.json()["data"]["rejectionReason"]
    assert code in ("INVALID_UPDATE", "CIRCUIT_BREAKER_ACTIVE")
    _reads_answer(served)


def test_chunked_body_over_the_limit_gets_413_without_growing_memory(served: Served) -> None:
    tail = b'{"economyOverrides": {"scanXp": 11}}'

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * (1 << 20)
        yield tail

    before = rss_bytes()
    for _ in range(5):
        with httpx.Client(timeout=30) as client:
            response = client.put(
                served.url + CONFIG,
                content=chunks(),
                headers={**JSON_HEADERS, "Authorization": f"Bearer {served.token('Alpha')}"},
            )
        assert response.status_code == 413, response.text[:200]
        assert "request body over" in response.json()["error"]
    assert rss_bytes() - before < 25 * (1 << 20)
    # the same body with a Content-Length, and one byte over: 413 as well
    big = b" " * MAX_BODY_BYTES + tail
    assert _put(served, "Alpha", big).status_code == 413
    assert _put(served, "Alpha", b" " * (MAX_BODY_BYTES - len(tail)) + tail).status_code == 200
    _reads_answer(served)


def test_an_unexpected_error_is_a_json_500_and_the_connection_stays_open(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = served.runtime.experiment
    real = exp.decisions_json
    calls = [0]

    def flaky(*args: Any) -> bytes:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("boom")
        return real(*args)

    monkeypatch.setattr(exp, "decisions_json", flaky)
    request = get_request("/api/arena/decisions", served.token("Alpha"))
    first, second = raw_exchange(served.url, [request, request])
    head, _, body = first.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500")
    assert json.loads(body) == {"success": False, "error": "internal error: RuntimeError"}
    assert second.startswith(b"HTTP/1.1 200"), second[:200]


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        (CONFIG, {"economyOverrides": {}, "signals": {"x": "a" * 70_000}}, "body.signals"),
        (CONFIG, {"economyOverrides": {"k" * 300: 1}}, "at most 200 characters"),
        (CONFIG, {"economyOverrides": {f"k{i}": 1 for i in range(65)}}, "economyOverrides"),
        ("/api/arena/heartbeat", {"metadata": {"x": ["a" * 1000] * 70}}, "body.metadata"),
    ],
)
def test_what_is_kept_per_request_is_bounded(
    served: Served, path: str, body: dict[str, Any], says: str
) -> None:
    """Every attempt is logged: a mebibyte per request would grow the server without end."""
    method = "PUT" if path == CONFIG else "POST"
    response = served.call(method, path, served.token("Beta"), json=body)
    assert response.status_code == 422 and says in response.json()["error"], response.text[:300]


def test_boundary_names_the_problem() -> None:
    assert parse_body(b' {"a": [1, 2.5, "x", null, true]} ') == {"a": [1, 2.5, "x", None, True]}
    for raw, says in [
        (b'{"a": 1} {"b": 2}', "extra data"),
        (b"{", "position"),
        (b'{"a": [1e999]}', "a.0: number 1e999 is out of range"),
        (b"[" + b"[0]," * 20_001 + b"0]", "more than"),
    ]:
        with pytest.raises(BodyError, match=says):
            parse_body(raw)


# ---- property-based: the whole input surface --------------------------------------------------

SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
TEXT = st.text(max_size=12) | st.tuples(st.text(max_size=4), SURROGATE, st.text(max_size=4)).map(
    "".join
)
RAW_LITERALS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1e-400", "1" + "0" * 500]
RAW = st.sampled_from(RAW_LITERALS).map(lambda lit: f"@@RAW:{lit}@@")
DEEP = st.builds(
    lambda depth, kind: f"@@DEEP:{kind}:{depth}@@",
    st.integers(0, 1200) | st.sampled_from([MAX_DEPTH - 2, MAX_DEPTH, 20_000]),
    st.sampled_from(["dict", "list"]),
)
LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(10**400), 10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["NaN", "inf", "-Infinity", "1e400"])
    | TEXT
    | RAW
    | DEEP
)
VALUE = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from(["scanXp", "feedbackXp", "scanDailyCap", "scan\udfffXp"]) | TEXT


def _render(value: Any, ascii_only: bool) -> str:
    """JSON text with the raw literals and deep nestings the json module cannot write."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    for literal in RAW_LITERALS:
        text = text.replace(f'"@@RAW:{literal}@@"', literal)
    while '"@@DEEP:' in text:
        start = text.index('"@@DEEP:')
        end = text.index('@@"', start) + 3
        _, kind, depth = text[start + 1 : end - 3].split(":")
        text = text[:start] + _nested(int(depth), kind=kind) + text[end:]
    return text


def _brief(days: Any) -> bool:
    """Not a long advance: thousands of simulated days would only make the fuzzing slow."""
    return not (isinstance(days, int | float) and not isinstance(days, bool) and 1 < days <= 3650)


NUMBER = st.integers(0, 100) | st.floats(0, 100)
"""What an agent normally sends, so that many requests also reach the guardrails and the log."""
BODIES = st.one_of(
    st.builds(
        lambda o, r, s: ("PUT", CONFIG, {"economyOverrides": o, "reasoning": r, "signals": s}),
        st.dictionaries(KEYS, NUMBER | LEAF, max_size=3) | VALUE,
        st.text(max_size=30) | VALUE,
        st.none() | st.dictionaries(st.text(max_size=8), NUMBER | VALUE, max_size=3) | VALUE,
    ),
    st.builds(
        lambda i, m: ("POST", "/api/arena/heartbeat", {"requestedPollInterval": i, "metadata": m}),
        NUMBER | LEAF,
        st.none() | VALUE,
    ),
    st.builds(
        lambda u, e: ("POST", "/api/arena/webhooks", {"url": u, "events": e}),
        st.just("http://127.0.0.1:9/hook") | TEXT,
        st.none() | st.just(["config_updated"]) | VALUE,
    ),
    st.builds(
        lambda d: ("POST", "/api/arena/admin/advance", {"days": d}),
        st.floats(0.01, 0.2) | LEAF.filter(_brief),
    ),
)
PADDING = st.sampled_from([0] * 5 + [3, MAX_BODY_BYTES - 1, MAX_BODY_BYTES + 1, 3 * MAX_BODY_BYTES])


def _check_envelope(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    body = response.json()
    assert body["success"] is (response.status_code < 400)
    assert ("data" in body) if body["success"] else isinstance(body.get("error"), str)


def _hostile_request(
    served: Served, call: tuple[str, str, Any], ascii_only: bool, padding: int, chunked: bool
) -> None:
    method, path, payload = call
    text = _render(payload, ascii_only)
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate here is invalid UTF-8
    if padding:
        raw = b" " * max(0, padding - len(raw)) + raw
    token = served.runtime.tokens.admin_token if "admin" in path else served.token("Alpha")
    content: bytes | Iterator[bytes] = raw
    if chunked:
        content = iter([raw[i : i + 65536] for i in range(0, len(raw), 65536)] or [b""])
    response = served.call(method, path, token, content=content, headers=dict(JSON_HEADERS))
    _check_envelope(response)
    if len(raw) > MAX_BODY_BYTES:
        assert response.status_code == 413
    if response.status_code == 200 and path == CONFIG:
        data = response.json()["data"]
        assert isinstance(data["accepted"], bool)


def _fuzz_once(
    served: Served, call: tuple[str, str, Any], ascii_only: bool, padding: int, chunked: bool
) -> None:
    _hostile_request(served, call, ascii_only, padding, chunked)
    _reads_answer(served)
    for vid in served.runtime.experiment.order:
        config = served.runtime.experiment.rails.current_config(vid)
        assert all(math.isfinite(v) and v >= 0 for v in config.values())


@given(call=BODIES, ascii_only=st.booleans(), padding=PADDING, chunked=st.booleans())
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_input_never_breaks_a_read(
    served: Served, call: tuple[str, str, Any], ascii_only: bool, padding: int, chunked: bool
) -> None:
    _fuzz_once(served, call, ascii_only, padding, chunked)


@pytest.mark.slow
@given(call=BODIES, ascii_only=st.booleans(), padding=PADDING, chunked=st.booleans())
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_many_fuzzed_inputs_never_break_a_read(
    served: Served, call: tuple[str, str, Any], ascii_only: bool, padding: int, chunked: bool
) -> None:
    served.advance(0.05)  # let the rate limit pass now and then, so some updates are accepted
    _fuzz_once(served, call, ascii_only, padding, chunked)
