"""JWT tokens: the ones the relay mints (HS256) and, optionally, an identity provider's.

Token kinds, told apart by their claims:

- session token: ``sub``, ``name``, ``sid``, ``role`` -- admits one user to one session;
- team token: ``sub``, ``name``, no ``sid`` -- may create sessions, and rejoin sessions
  where the user already takes part;
- invite token: ``inv``, ``sid``, ``role``, no ``sub`` -- redeemed once per use for a
  new participant, who then gets a personal session token.

The relay's own tokens are HS256 with the relay secret. Tokens from an identity
provider (RS256/ES256 with a public key or a JWKS URL) carry identity only. Each key
verifies only its own algorithm family, so ``alg: none`` and HS/RS confusion fail.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collab_lsp.protocol.errors import ErrorCode, ProtocolError
from collab_lsp.protocol.models import ParticipantKind
from collab_lsp.protocol.permissions import Role

__all__ = ["AUDIENCE", "Authenticator", "TokenClaims"]

AUDIENCE = "collab-relay"
_RELAY_ALGORITHM = "HS256"
_PROVIDER_ALGORITHMS = ("RS256", "ES256")


class TokenClaims(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: str | None = Field(default=None, min_length=1, max_length=64)
    name: str | None = Field(default=None, min_length=1, max_length=64)
    sid: str | None = Field(default=None, min_length=1, max_length=64)
    role: Role | None = None
    kind: ParticipantKind = ParticipantKind.HUMAN
    inv: str | None = None
    exp: int | None = None
    jti: str | None = None

    @property
    def is_invite(self) -> bool:
        return self.inv is not None


class Authenticator:
    """Verifies tokens and mints the relay's own."""

    def __init__(
        self,
        secret: str,
        *,
        provider_key: str | None = None,
        jwks_url: str | None = None,
        provider_audience: str | None = None,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the relay secret must be at least 32 characters")
        self._secret = secret
        self._provider_key = provider_key
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None
        self._provider_audience = provider_audience

    def issue(
        self,
        *,
        sub: str | None,
        name: str | None,
        sid: str | None = None,
        role: Role | None = None,
        kind: ParticipantKind = ParticipantKind.HUMAN,
        invite_id: str | None = None,
        ttl_seconds: int | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"aud": AUDIENCE, "iat": now, "jti": uuid.uuid4().hex}
        optional = {"sub": sub, "name": name, "sid": sid, "inv": invite_id}
        claims.update({key: value for key, value in optional.items() if value is not None})
        if role is not None:
            claims["role"] = role.value
        if kind is not ParticipantKind.HUMAN:
            claims["kind"] = kind.value
        if ttl_seconds is not None:
            claims["exp"] = now + ttl_seconds
        return jwt.encode(claims, self._secret, algorithm=_RELAY_ALGORITHM)

    def verify(self, token: str) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("token is not a JWT") from None
        algorithm = header.get("alg")
        try:
            if algorithm == _RELAY_ALGORITHM:
                payload = jwt.decode(
                    token,
                    self._secret,
                    algorithms=[_RELAY_ALGORITHM],
                    audience=AUDIENCE,
                    options={"require": ["iat"]},
                )
            elif algorithm in _PROVIDER_ALGORITHMS and (self._provider_key or self._jwks):
                payload = self._verify_provider(token, str(algorithm))
            else:
                raise _invalid(f"token algorithm {algorithm!r} is not accepted")
        except jwt.ExpiredSignatureError:
            raise ProtocolError(
                ErrorCode.TOKEN_EXPIRED, "token has expired; ask the host for a new one"
            ) from None
        except jwt.PyJWTError as exc:
            raise _invalid(f"token rejected: {exc}") from None
        try:
            claims = TokenClaims.model_validate(payload)
        except ValidationError as exc:
            raise _invalid(f"token claims are malformed: {exc.errors()[0]['loc']}") from None
        if claims.sub is None and claims.inv is None:
            raise _invalid("token names no user ('sub') and is not an invite")
        return claims

    def _verify_provider(self, token: str, algorithm: str) -> dict[str, Any]:
        key: Any = self._provider_key
        if self._jwks is not None:
            key = self._jwks.get_signing_key_from_jwt(token).key
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=self._provider_audience,
            options={"verify_aud": self._provider_audience is not None},
        )
        # An identity provider vouches for who someone is, never for a role or session.
        for claim in ("sid", "role", "inv"):
            payload.pop(claim, None)
        return payload


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_TOKEN, message)
