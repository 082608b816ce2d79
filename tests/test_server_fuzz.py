"""Fuzzing every route with malformed and hostile input: never a 5xx, never corrupted state.

Schemathesis generates requests from the server's own OpenAPI schema (valid and schema-violating
bodies, queries and paths); Hypothesis adds hostile JSON, tokens and raw bytes. Afterwards the
experiment must still be consistent: every config a valid economy, control untouched, each
variant's decision log its own and in step with the guardrails' audit log.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import settings as server_settings

from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, validate_overrides
from arena_rl.server import ArenaRuntime, create_app

RUNTIME = ArenaRuntime(server_settings(variants=("Alpha", "Beta")))
RUNTIME.experiment.advance(2)
APP = create_app(RUNTIME)
CLIENT = TestClient(APP, raise_server_exceptions=False)
EXP = RUNTIME.experiment
ALPHA, BETA, CONTROL = (
    RUNTIME.variant_tokens[v] for v in (EXP.order[1], EXP.order[2], EXP.order[0])
)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from([*DEFAULT_ECONOMY, "__proto__", "", "scanxp", "constructor"]) | st.text(
    max_size=12
)


CHECKED = [0]
"""Responses checked so far in this module (the fuzzers' request count)."""


def _check(response: Any) -> None:
    """No 5xx, always the live envelope."""
    CHECKED[0] += 1
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code == 204:
        return
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("success"), bool), body
    assert body["success"] is (response.status_code < 400)
    assert ("data" in body) if body["success"] else isinstance(body.get("error"), str)


@SCHEMA.parametrize()
@FAST
def test_schema_fuzz_never_5xx(case: schemathesis.Case) -> None:
    for token in (ALPHA, CONTROL, "strat_junk.token"):
        headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        _check(case.call(headers=headers))
    _check(
        case.call(headers={k: v for k, v in (case.headers or {}).items() if k != "Authorization"})
    )


@given(
    overrides=st.dictionaries(KEYS, JSON_VALUE, max_size=6), reasoning=JSON_VALUE, extra=JSON_VALUE
)
@FAST
def test_hostile_updates_are_answered_not_crashed(
    overrides: dict[str, Any], reasoning: Any, extra: Any
) -> None:
    body = json.dumps(
        {"economyOverrides": overrides, "reasoning": reasoning, "signals": extra}, allow_nan=True
    )
    for token in (ALPHA, CONTROL):
        response = CLIENT.put(
            "/api/arena/variant/config",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        _check(response)
        if response.status_code == 200:
            data = response.json()["data"]
            assert data["accepted"] is False or token == ALPHA
            if not data["accepted"]:
                assert data["rejectionReason"] in {
                    "INVALID_UPDATE", "RATE_LIMITED", "CIRCUIT_BREAKER_ACTIVE",
                    "CONTROL_VARIANT_IMMUTABLE",
                }  # fmt: skip


@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH"]),
    path=st.sampled_from(
        [
            "/api/arena/variant",
            "/api/arena/signals",
            "/api/arena/variant/config",
            "/api/arena/heartbeat",
            "/api/arena/scoreboard",
            "/api/arena/decisions",
            "/api/arena/webhooks",
            "/api/arena/webhooks/wh_x",
            "/api/arena/admin/advance",
            "/x",
        ]
    ),
    raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
    token=st.text(max_size=60) | st.sampled_from([ALPHA, BETA, CONTROL]),
    query=st.dictionaries(
        st.sampled_from(["page", "pageSize", "variantId"]), st.text(max_size=12), max_size=3
    ),
)
@FAST
def test_raw_bytes_tokens_and_queries_never_5xx(
    method: str, path: str, raw: bytes, token: str, query: dict[str, str]
) -> None:
    headers = {"Content-Type": "application/json"}
    header_value = f"Bearer {token}"
    if header_value.isprintable() and header_value.isascii():
        headers["Authorization"] = header_value
    _check(CLIENT.request(method, path, content=raw, headers=headers, params=query))


def test_state_is_consistent_after_fuzzing() -> None:
    """Runs last in this module: whatever the fuzzers sent, the experiment is intact."""
    control, alpha, _beta = EXP.order
    assert EXP.rails.current_config(control) == dict(DEFAULT_ECONOMY)
    for vid in EXP.order:
        config = EXP.rails.current_config(vid)
        assert validate_overrides(config) == config and set(config) == set(DEFAULT_ECONOMY)
        assert all(math.isfinite(v) and v >= 0 for v in config.values())
    assert CHECKED[0] >= 500, f"only {CHECKED[0]} fuzzed requests"
    logs = EXP.all_decisions()
    assert logs[alpha], "the fuzzers never reached the guardrails"
    for vid, log in logs.items():
        assert all(entry["variantId"] == vid for entry in log)
        assert len({entry["id"] for entry in log}) == len(log)
        assert EXP.rails.counts(vid)["submitted"] == len(log)
    updates = [e for e in EXP.rails.audit_log if e.kind == "update"]
    assert len(updates) == sum(len(log) for log in logs.values())
    assert not any(e["accepted"] for e in logs[control])
    # and the server still answers normally
    response = CLIENT.get("/api/arena/variant", headers={"Authorization": f"Bearer {BETA}"})
    assert response.status_code == 200 and response.json()["data"]["variantName"] == "Beta"


@pytest.mark.slow
@given(
    overrides=st.dictionaries(KEYS, JSON_VALUE, max_size=8), token=st.sampled_from([ALPHA, BETA])
)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_many_hostile_updates_keep_configs_valid(overrides: dict[str, Any], token: str) -> None:
    EXP.advance(0.05)  # let the rate limit pass now and then, so some updates are accepted
    body = json.dumps({"economyOverrides": overrides, "reasoning": "fuzz"}, allow_nan=True)
    response = CLIENT.put(
        "/api/arena/variant/config",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    _check(response)
    for vid in EXP.order:
        config = EXP.rails.current_config(vid)
        assert validate_overrides(config) == config
