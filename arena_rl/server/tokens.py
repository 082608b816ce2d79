"""Strategy and admin tokens: signed, scoped to one variant, never forgeable.

A strategy token has the live platform's shape, ``strat_<base64url payload>``, with the payload
``{experimentId, variantId, mode: "AGENT", iat, exp}``, followed by ``.<base64url HMAC-SHA256>``
of the payload under a per-server secret, so a client cannot mint a token for another variant by
editing the payload. The admin token is a random secret compared in constant time.

The experiment lives in memory, so a restart starts a new one. Tokens therefore also carry a
random ``startId`` of the server start that issued them: with a fixed ``token_secret`` an old
token still has a genuine signature, and without this claim it would act on the fresh experiment
as if nothing had happened. Such a token is refused with :class:`StaleTokenError` (HTTP 403
``EXPERIMENT_NOT_RUNNING``, which stops the SDK's ``Agent.run``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

STRATEGY_PREFIX = "strat_"
ADMIN_PREFIX = "adm_"
TOKEN_LIFETIME_S = 365 * 24 * 3600
MAX_TOKEN_CHARS = 4096


class TokenError(ValueError):
    """A token that is missing, malformed, forged, expired or for another experiment."""


class StaleTokenError(TokenError):
    """A genuine token from an earlier start of this server, whose experiment is gone."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified strategy token grants: acting and reading for one variant."""

    experiment_id: str
    variant_id: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Issues and verifies the tokens of one served experiment.

    Args:
        experiment_id: the only experiment whose tokens verify.
        secret: HMAC key; random per server start unless given.
        clock: wall-clock seconds (token ``iat``/``exp`` are real time, as on the platform).
        start_id: this start's id; random unless given. Only its tokens verify, whatever the
            secret.
    """

    def __init__(
        self,
        experiment_id: str,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
        start_id: str | None = None,
    ) -> None:
        self.experiment_id = experiment_id
        self.start_id = start_id or secrets.token_hex(6)
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock
        self.admin_token = ADMIN_PREFIX + secrets.token_urlsafe(24)
        self._verified: dict[str, TokenClaims] = {}
        """Tokens already verified: every request presents one, and only genuine tokens (a
        handful: those this start issued) get in, so it stays small."""

    def _time(self) -> int:
        return int(self._clock())

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, variant_id: str) -> str:
        """A strategy token for ``variant_id`` valid for a year."""
        now = self._time()
        claims = {
            "experimentId": self.experiment_id,
            "variantId": variant_id,
            "startId": self.start_id,
            "mode": "AGENT",
            "iat": now,
            "exp": now + TOKEN_LIFETIME_S,
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{STRATEGY_PREFIX}{payload}.{self._sign(payload)}"

    def verify(self, token: str) -> TokenClaims:
        """The claims of a genuine, unexpired token of this experiment; TokenError otherwise."""
        known = self._verified.get(token)
        if known is not None:
            if self._time() >= known.expires_at:
                raise TokenError("strategy token expired")
            return known
        claims = self._verify(token)
        if len(self._verified) < 1024:
            self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> TokenClaims:
        if not token.startswith(STRATEGY_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            raise TokenError("not a strategy token")
        payload, dot, signature = token[len(STRATEGY_PREFIX) :].partition(".")
        if not dot or not payload.isascii() or not signature.isascii():
            raise TokenError("malformed strategy token")
        if not hmac.compare_digest(self._sign(payload), signature):
            raise TokenError("invalid strategy token signature")
        try:
            claims = json.loads(_unb64(payload))
            experiment, variant = str(claims["experimentId"]), str(claims["variantId"])
            issued, expires = int(claims["iat"]), int(claims["exp"])
            start = str(claims.get("startId"))
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TokenError("malformed strategy token payload") from exc
        if experiment != self.experiment_id:
            raise TokenError("token belongs to another experiment")
        if not hmac.compare_digest(start.encode("utf-8", "replace"), self.start_id.encode()):
            raise StaleTokenError(
                "EXPERIMENT_NOT_RUNNING: this token is from an earlier start of the server; "
                "that experiment ended when the server restarted (a restart starts a new one). "
                "Use the token in the new manifest."
            )
        if self._time() >= expires:
            raise TokenError("strategy token expired")
        return TokenClaims(experiment, variant, issued, expires)

    def is_admin(self, token: str) -> bool:
        """Whether ``token`` is this server's admin token (constant-time comparison)."""
        return hmac.compare_digest(token.encode("utf-8", "replace"), self.admin_token.encode())
