"""The HTTP face of the served experiment: the eight live Arena routes plus admin routes.

Every answer uses the live envelope: ``{"success": true, "data": {...}}`` or
``{"success": false, "error": "..."}``. Guardrail rejections are HTTP 200 with
``accepted: false``; 401 means a missing, malformed, forged or foreign token; 403 means the token
may not do this (another variant's data, admin-only) or the experiment is not RUNNING; 400/422 a
malformed request; 404 an unknown route or object; 413 a body over 1 MiB. Bad input never gives
a 5xx: the SDK would retry a 5xx with 1 s and 2 s sleeps. Every body passes
:class:`~arena_rl.server.boundary.BoundaryMiddleware` first (bounded, finite, valid-Unicode JSON),
so nothing stored can later fail to encode; an unexpected error is a JSON 500 on a connection that
stays open.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations, which
refer to aliases local to :func:`create_app`.
"""

import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from arena_rl.core.guardrails import ExperimentStatus
from arena_rl.live.page import mount
from arena_rl.server.boundary import BoundaryMiddleware
from arena_rl.server.runtime import ArenaRuntime
from arena_rl.server.state import NotRunningError
from arena_rl.server.tokens import StaleTokenError, TokenClaims, TokenError
from arena_rl.server.webhooks import WebhookError
from arena_rl.server.wire import json_safe

MAX_REASONING_CHARS = 20_000
MAX_STORED_BYTES = 64 * 1024
"""Agent-supplied ``signals`` and heartbeat ``metadata`` are kept (decision log, admin view): each
at most this much JSON, so a busy agent cannot grow the server by a mebibyte per request."""
MAX_OVERRIDE_KEYS = 64
MAX_KEY_CHARS = 200
PREFIX = "/api/arena"


class ApiError(Exception):
    """An error answered in the live envelope with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": json_safe(data)}, status_code=status)


def ok_encoded(data: bytes) -> Response:
    """The success envelope around ``data``, already encoded by :func:`wire.encode`."""
    return Response(b'{"success":true,"data":' + data + b"}", media_type="application/json")


def fail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status)


def _bounded_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refuse a stored free-form object over :data:`MAX_STORED_BYTES` of JSON."""
    if value is not None and len(json.dumps(value, separators=(",", ":"))) > MAX_STORED_BYTES:
        raise ValueError(f"at most {MAX_STORED_BYTES} bytes of JSON are kept")
    return value


class ConfigBody(BaseModel):
    """``PUT /variant/config``: the SDK's ``act()`` payload."""

    model_config = ConfigDict(extra="ignore")
    economyOverrides: dict[str, Any] = Field(max_length=MAX_OVERRIDE_KEYS)  # noqa: N815
    reasoning: str | None = Field(default="", max_length=MAX_REASONING_CHARS)
    signals: dict[str, Any] | None = None
    variantId: str | None = Field(default=None, max_length=200)  # noqa: N815
    """Optional; if given it must be the token's own variant."""

    @field_validator("economyOverrides")
    @classmethod
    def _short_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Knob names are short; every attempt is logged, so a long key would be kept too."""
        if any(len(k) > MAX_KEY_CHARS for k in value):
            raise ValueError(f"keys are at most {MAX_KEY_CHARS} characters")
        return value

    _signals_bounded = field_validator("signals")(_bounded_json)


class HeartbeatBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    requestedPollInterval: float | None = Field(  # noqa: N815
        default=None, gt=0, le=7 * 86400, allow_inf_nan=False
    )
    metadata: dict[str, Any] | None = None

    _metadata_bounded = field_validator("metadata")(_bounded_json)


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str = Field(max_length=2048)
    events: list[str] | None = Field(default=None, max_length=16)


class AdvanceBody(BaseModel):
    days: float = Field(default=1.0, gt=0, le=3650, allow_inf_nan=False)


class BreakerBody(BaseModel):
    variantId: str = Field(max_length=200)  # noqa: N815


bearer = HTTPBearer(auto_error=False, description="strategy token (strat_...) or admin token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def create_app(runtime: ArenaRuntime) -> FastAPI:
    """The FastAPI app serving ``runtime``'s experiment.

    The agent and quick admin routes are ``async def`` although they call blocking code: each
    takes the experiment's lock for microseconds, and a sync route would cost two thread-pool
    hops per request (its dependency and itself), a third of the CPU of a request and a GIL
    hand-off each under load. Only the slow admin routes (``advance``, ``log``) run in threads.
    """
    app = FastAPI(
        title="arena_rl Arena API",
        version="0.1.0",
        description="The TendedLoop Arena strategy API, served from the arena_rl simulator.",
    )
    exp = runtime.experiment
    _install_error_handlers(app)
    mount(app, runtime.live)  # the live page, /live/

    async def strategy(credentials: Credentials) -> TokenClaims:
        if credentials is None or not credentials.credentials:
            raise ApiError(401, "missing bearer strategy token")
        try:
            claims = runtime.tokens.verify(credentials.credentials)
        except StaleTokenError as exc:  # 403, not 401: the SDK's Agent.run stops on a 403
            raise ApiError(403, str(exc)) from None
        except TokenError as exc:
            raise ApiError(401, f"invalid strategy token: {exc}") from None
        if claims.variant_id not in exp.variants:
            raise ApiError(401, "invalid strategy token: unknown variant")
        return claims

    async def admin(credentials: Credentials) -> None:
        if credentials is None or not runtime.tokens.is_admin(credentials.credentials):
            raise ApiError(401, "admin token required")

    # type aliases of the route signatures, named like types
    StrategyAuth = Annotated[TokenClaims, Depends(strategy)]  # noqa: N806
    AdminAuth = Annotated[None, Depends(admin)]  # noqa: N806
    VariantParam = Annotated[str | None, Query(max_length=200)]  # noqa: N806

    def scoped(claims: TokenClaims, variant_id: str | None) -> str:
        if variant_id is not None and variant_id != claims.variant_id:
            raise ApiError(403, f"token is scoped to variant {claims.variant_id}, not {variant_id}")
        return claims.variant_id

    @app.get(f"{PREFIX}/variant")
    async def variant_info(claims: StrategyAuth, variantId: VariantParam = None) -> JSONResponse:  # noqa: N803
        return ok(exp.info(scoped(claims, variantId)))

    @app.get(f"{PREFIX}/signals")
    async def observe(claims: StrategyAuth, variantId: VariantParam = None) -> Response:  # noqa: N803
        return ok_encoded(exp.signals_json(scoped(claims, variantId)))

    @app.put(f"{PREFIX}/variant/config")
    async def act(
        claims: StrategyAuth,
        body: ConfigBody,
        variantId: VariantParam = None,  # noqa: N803
    ) -> JSONResponse:
        vid = scoped(claims, body.variantId or variantId)
        scoped(claims, variantId)
        return ok(exp.act(vid, body.economyOverrides, body.reasoning or "", body.signals))

    @app.post(f"{PREFIX}/heartbeat")
    async def heartbeat(claims: StrategyAuth, body: HeartbeatBody) -> JSONResponse:
        exp.heartbeat(claims.variant_id, body.requestedPollInterval, body.metadata)
        return ok({})

    @app.get(f"{PREFIX}/scoreboard")
    async def scoreboard(claims: StrategyAuth) -> JSONResponse:
        return ok(exp.scoreboard())

    @app.get(f"{PREFIX}/decisions")
    async def decisions(
        claims: StrategyAuth,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        pageSize: Annotated[int, Query(ge=1, le=100)] = 20,  # noqa: N803
        variantId: VariantParam = None,  # noqa: N803
    ) -> Response:
        return ok_encoded(exp.decisions_json(scoped(claims, variantId), page, pageSize))

    @app.post(f"{PREFIX}/webhooks")
    async def register_webhook(claims: StrategyAuth, body: WebhookBody) -> JSONResponse:
        now = runtime.clock.iso(runtime.clock.now())
        try:
            hook = runtime.registry.register(claims.variant_id, body.url, body.events, now)
        except WebhookError as exc:
            raise ApiError(400, str(exc)) from None
        return ok(hook.to_api(with_secret=True))

    @app.delete(f"{PREFIX}/webhooks/{{webhook_id}}")
    async def delete_webhook(claims: StrategyAuth, webhook_id: str) -> JSONResponse:
        if not runtime.registry.delete(claims.variant_id, webhook_id):
            raise ApiError(404, f"Webhook {webhook_id[:100]} not found")
        return ok({"webhookId": webhook_id, "deleted": True})

    def lifecycle(target: ExperimentStatus) -> JSONResponse:
        try:
            return ok(exp.set_status(target))
        except ValueError as exc:
            raise ApiError(409, str(exc)) from None

    @app.post(f"{PREFIX}/admin/pause")
    async def pause(_: AdminAuth) -> JSONResponse:
        return lifecycle(ExperimentStatus.PAUSED)

    @app.post(f"{PREFIX}/admin/resume")
    async def resume(_: AdminAuth) -> JSONResponse:
        return lifecycle(ExperimentStatus.RUNNING)

    @app.post(f"{PREFIX}/admin/complete")
    async def complete(_: AdminAuth) -> JSONResponse:
        return lifecycle(ExperimentStatus.COMPLETED)

    @app.post(f"{PREFIX}/admin/advance")
    def advance(_: AdminAuth, body: AdvanceBody | None = None) -> JSONResponse:
        if runtime.clock.mode != "manual":
            raise ApiError(409, "the clock is in realtime mode; advance needs time.mode=manual")
        if exp.status is not ExperimentStatus.RUNNING:
            raise ApiError(409, f"experiment is {exp.status}; time advances only while RUNNING")
        return ok(exp.advance((body or AdvanceBody()).days))

    @app.post(f"{PREFIX}/admin/reset-breaker")
    async def reset_breaker(_: AdminAuth, body: BreakerBody) -> JSONResponse:
        if body.variantId not in exp.variants:
            raise ApiError(404, f"unknown variant {body.variantId[:100]}")
        try:
            exp.reset_breaker(body.variantId)
        except ValueError as exc:
            raise ApiError(409, str(exc)) from None
        return ok(exp.info(body.variantId))

    @app.post(f"{PREFIX}/admin/log")
    def log_now(_: AdminAuth) -> JSONResponse:
        if not runtime.settings.tracking_enabled:
            raise ApiError(409, "tracking is disabled (tracking.enabled=false)")
        return ok({"runId": runtime.log_to_mlflow()})

    @app.get(f"{PREFIX}/admin/state")
    async def admin_state(_: AdminAuth) -> JSONResponse:
        records = list(runtime.dispatcher.records)[-50:]
        webhooks = {
            "registered": runtime.registry.count(),
            "pending": runtime.dispatcher.pending(),
            "recentDeliveries": [vars(r) for r in records],
        }
        run = {"lastRunId": runtime.last_run_id, "startId": runtime.start_id}
        return ok({**exp.state(), "webhooks": webhooks, **run})

    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Every error in the live envelope; validation errors as 422 (400 for broken JSON).

    The boundary middleware sits inside Starlette's error middleware: bodies are checked before
    routing, and an unexpected exception ends there as a JSON 500 instead of reaching uvicorn,
    which would reset the keep-alive connection after answering.
    """
    app.add_middleware(BoundaryMiddleware)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return fail(exc.status, exc.message)

    @app.exception_handler(NotRunningError)
    async def not_running(request: Request, exc: NotRunningError) -> JSONResponse:
        return fail(403, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        broken = any(e.get("type") == "json_invalid" for e in errors)
        parts = []
        for e in errors[:5]:
            where = ".".join(str(p)[:60] for p in e.get("loc", ()))
            parts.append(f"{where}: {str(e.get('msg', 'invalid'))[:200]}")
        return fail(400 if broken else 422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "Not found" if exc.status_code == 404 else str(exc.detail)
        return fail(exc.status_code, message)
