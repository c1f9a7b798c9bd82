"""Error codes and close codes of the relay protocol.

Every problem the relay reports is either an ``error`` frame (the connection stays
open) or a WebSocket close code (the connection ends). ``ProtocolError`` carries an
error code, a human message that names the problem and, when one field is at
fault, that field's dotted path::

    ProtocolError
    ├── code: ErrorCode      -> the frame's ``error_code``
    ├── message: str         -> the frame's ``message``
    ├── field: str | None    -> the frame's ``field``
    └── retry_after: float | None (only with RATE_LIMITED)
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["CloseCode", "ErrorCode", "ProtocolError"]


class ErrorCode(StrEnum):
    INVALID_JSON = "INVALID_JSON"
    INVALID_FRAME = "INVALID_FRAME"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
    AUTH_REQUIRED = "AUTH_REQUIRED"
    INVALID_TOKEN = "INVALID_TOKEN"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_ENDED = "SESSION_ENDED"
    SESSION_MISMATCH = "SESSION_MISMATCH"
    NOT_JOINED = "NOT_JOINED"
    ALREADY_JOINED = "ALREADY_JOINED"
    NOT_FOUND = "NOT_FOUND"
    NOT_AUTHOR = "NOT_AUTHOR"
    UNKNOWN_USER = "UNKNOWN_USER"
    REMOVED = "REMOVED"
    INVITE_INVALID = "INVITE_INVALID"
    RATE_LIMITED = "RATE_LIMITED"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class CloseCode(IntEnum):
    """WebSocket close codes the relay uses (4000-4999 are application codes)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    AUTH_FAILED = 4001
    JOIN_TIMEOUT = 4002
    REMOVED = 4003
    SESSION_NOT_FOUND = 4004
    SLOW_CONSUMER = 4008
    SESSION_ENDED = 4010
    TOO_MANY_ERRORS = 4029


class ProtocolError(Exception):
    """A request the relay refuses; becomes an ``error`` frame."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
