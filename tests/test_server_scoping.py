"""Token scoping: a strategy token reads and acts only for its own variant; control never acts."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from server_support import Served, serve
from tendedloop_agent import Agent, ConfigUpdate

from arena_rl.server.tokens import TokenAuthority

ROUTES = [
    ("GET", "/api/arena/variant", None),
    ("GET", "/api/arena/signals", None),
    ("PUT", "/api/arena/variant/config", {"economyOverrides": {"scanXp": 11}}),
    ("POST", "/api/arena/heartbeat", {"requestedPollInterval": 30}),
    ("GET", "/api/arena/scoreboard", None),
    ("GET", "/api/arena/decisions", None),
    ("POST", "/api/arena/webhooks", {"url": "http://127.0.0.1:9/x"}),
    ("DELETE", "/api/arena/webhooks/wh_00000000", None),
]


@pytest.fixture
def served() -> Iterator[Served]:
    with serve() as s:
        s.advance(2)
        yield s


def _forged(token: str, variant_id: str) -> str:
    """The same signature over a payload edited to claim another variant."""
    payload, _, signature = token.removeprefix("strat_").partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["variantId"] = variant_id
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"strat_{edited}.{signature}"


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_needs_a_genuine_token(
    served: Served, method: str, path: str, body: dict | None
) -> None:
    alpha, beta_id = served.token("Alpha"), served.variant_id("Beta")
    other_server = TokenAuthority(served.runtime.experiment.experiment_id).issue(beta_id)
    bad_tokens = [
        None,  # no Authorization header at all
        "strat_",
        "strat_.",
        "strat_demo_local",  # the SDK demo's token
        alpha + "x",
        _forged(alpha, beta_id),
        other_server,  # right shape and ids, signed by another server
        served.runtime.tokens.admin_token,  # admin is not a strategy token
    ]
    for token in bad_tokens:
        response = served.call(method, path, token, json=body)
        assert response.status_code == 401, (token, response.text)
        assert response.json()["success"] is False
    basic = served.call(method, path, json=body, headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401
    # nothing was recorded for any variant
    assert all(not log for log in served.runtime.experiment.all_decisions().values())


def test_wrong_variant_reads_and_writes_are_refused(served: Served) -> None:
    alpha, beta_id = served.token("Alpha"), served.variant_id("Beta")
    for method, path, body in ROUTES[:3] + ROUTES[5:6]:
        response = served.call(method, path, alpha, json=body, params={"variantId": beta_id})
        assert response.status_code == 403, (path, response.text)
        assert "scoped to variant" in response.json()["error"]
    wrong_body = {"economyOverrides": {"scanXp": 11}, "variantId": beta_id}
    response = served.call("PUT", "/api/arena/variant/config", alpha, json=wrong_body)
    assert response.status_code == 403
    decisions = served.runtime.experiment.all_decisions()
    assert not decisions[beta_id] and not decisions[served.variant_id("Alpha")]
    # naming its own variant is fine
    own = {"economyOverrides": {"scanXp": 11}, "variantId": served.variant_id("Alpha")}
    assert served.call("PUT", "/api/arena/variant/config", alpha, json=own).status_code == 200


def test_each_token_sees_only_its_own_variant_and_webhooks(served: Served) -> None:
    with (
        Agent(served.url, served.token("Alpha")) as alpha,
        Agent(served.url, served.token("Beta")) as beta,
    ):
        assert alpha.info().variant_name == "Alpha" and beta.info().variant_name == "Beta"
        alpha.act(ConfigUpdate({"scanXp": 12}, reasoning="alpha's own"))
        assert beta.decisions()["total"] == 0
        assert [d["reasoning"] for d in alpha.decisions()["decisions"]] == ["alpha's own"]
        assert beta.info().current_config["scanXp"] == 10.0  # untouched
        hook = alpha.register_webhook("http://127.0.0.1:9/x")
        with pytest.raises(httpx.HTTPStatusError) as err:
            beta.delete_webhook(hook.webhook_id)  # another variant's webhook does not exist
        assert err.value.response.status_code == 404
        alpha.delete_webhook(hook.webhook_id)
        # the scoreboard is the one cross-variant view
        board = {e.variant_name: e for e in beta.scoreboard()}
        assert board["Alpha"].current_config["scanXp"] == 12.0
        assert board["Alpha"].total_decisions == 1 and board["Beta"].total_decisions == 0


def test_control_reads_but_never_acts(served: Served) -> None:
    with Agent(served.url, served.token("Control")) as control:
        info = control.info()
        assert info.is_control and info.variant_name == "Control"
        assert control.observe().enrolled > 0
        assert len(control.scoreboard()) == 3
        result = control.act(ConfigUpdate({"scanXp": 11}, reasoning="sneaky"))
        assert not result.accepted and result.rejection_reason == "CONTROL_VARIANT_IMMUTABLE"
        assert control.info().current_config["scanXp"] == 10.0
        served.advance(1)
        again = control.act(ConfigUpdate({"scanXp": 11}, reasoning="sneaky again"))
        assert again.rejection_reason == "CONTROL_VARIANT_IMMUTABLE"
        served.admin("pause")  # the control lock comes first, whatever the status
        paused = control.act(ConfigUpdate({"scanXp": 11}))
        assert paused.rejection_reason == "CONTROL_VARIANT_IMMUTABLE"
    assert (
        served.runtime.experiment.rails.current_config(served.variant_id("Control"))["scanXp"]
        == 10.0
    )


def test_admin_routes_need_the_admin_token(served: Served) -> None:
    for token in (None, served.token("Alpha"), served.token("Control"), "adm_guess"):
        for command in ("pause", "complete", "advance", "log"):
            response = served.call("POST", f"/api/arena/admin/{command}", token, json={})
            assert response.status_code == 401
    assert served.admin("state")["experimentStatus"] == "RUNNING"
