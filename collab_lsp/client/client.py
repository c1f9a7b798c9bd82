"""An async client of the relay protocol, shared by the sidecar, the CLI and agents.

It keeps one connection to one session: it reconnects with backoff and resumes
from the last seq it saw, resends every unacknowledged durable frame with its
original id (the relay applies each id once), and re-sends the latest cursor and
presence so the others see where we are. A durable frame refused because the relay
cannot store right now waits and goes again when the relay says it stores again
(``park_unstored``; programs that would rather report it turn that off). Frames
that are not replies to a request go to ``on_frame`` in the order the relay sent them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from collab_lsp.client.backoff import Backoff
from collab_lsp.protocol.errors import CloseCode, ErrorCode
from collab_lsp.protocol.frame_actions import DURABLE_CLIENT_TYPES
from collab_lsp.protocol.links import normalize_relay_url

__all__ = ["ClientState", "RelayClient", "RelayError"]

log = logging.getLogger(__name__)

# A relay that answers with one of these will answer the same way next time.
_FATAL_ERRORS = frozenset(
    {
        ErrorCode.AUTH_REQUIRED,
        ErrorCode.INVALID_TOKEN,
        ErrorCode.TOKEN_EXPIRED,
        ErrorCode.PERMISSION_DENIED,
        ErrorCode.SESSION_NOT_FOUND,
        ErrorCode.SESSION_ENDED,
        ErrorCode.REMOVED,
        ErrorCode.INVITE_INVALID,
    }
)
_FATAL_CLOSES = frozenset(
    {CloseCode.AUTH_FAILED, CloseCode.REMOVED, CloseCode.SESSION_NOT_FOUND, CloseCode.SESSION_ENDED}
)
# A join refused for any other reason would be refused again (a bad name, a bad token...).
_RETRYABLE_AT_JOIN = frozenset({ErrorCode.STORE_UNAVAILABLE, ErrorCode.INTERNAL_ERROR})
_REPLY_TYPES = frozenset(
    {"ack", "error", "history", "comments", "invite_created", "invite_revoked", "pong"}
)
_NOT_SEQUENCED = frozenset({"ack", "mention", "connected"})


class _Dropped(Exception):
    """The connection ended in a way worth reconnecting after."""


class ClientState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


class RelayError(Exception):
    """The relay refused something; ``code`` is its error code."""

    def __init__(
        self,
        code: str,
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
        self.code_is_final = False

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> RelayError:
        return cls(
            str(frame.get("error_code", "ERROR")),
            str(frame.get("message", "the relay refused the request")),
            field=frame.get("field"),
            retry_after=frame.get("retry_after"),
        )

    @property
    def fatal(self) -> bool:
        return self.code_is_final or self.code in _FATAL_ERRORS

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class _Pending:
    frame: dict[str, Any]
    future: asyncio.Future[dict[str, Any]]
    expect: str
    durable: bool
    parked: bool = False


@dataclass
class RelayClient:
    relay_url: str
    token: str
    session_id: str | None = None
    name: str | None = None
    kind: str | None = None
    on_frame: Callable[[dict[str, Any]], None] = lambda frame: None
    on_state: Callable[[ClientState, str | None], None] = lambda state, detail: None
    backoff: Backoff = field(default_factory=Backoff)
    open_timeout: float = 10.0
    # A durable frame the relay could not store (its database or Redis is down) waits and
    # is sent again when the relay says it stores again; False: refuse it to the caller.
    park_unstored: bool = True

    state: ClientState = ClientState.OFFLINE
    last_seq: int | None = None
    epoch: str | None = None
    connected_frame: dict[str, Any] | None = None
    failure: RelayError | None = None

    def __post_init__(self) -> None:
        self.relay_url = normalize_relay_url(self.relay_url)
        if self.session_id is None:
            self.session_id = _session_of(self.token)
        self._pending: dict[str, _Pending] = {}
        self._presence: dict[str, dict[str, Any]] = {}
        self._websocket: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._first_attempt: asyncio.Future[None] | None = None
        self._resending: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Connect in the background; with ``wait``, return after the first attempt.

        A refusal (bad token, unknown session...) raises. An unreachable relay does
        not: ``start`` returns with the state ``reconnecting`` and retries with
        backoff, so a caller is never stuck waiting for a relay that is down.
        """
        loop = asyncio.get_running_loop()
        self._first_attempt = loop.create_future()
        self._stopping = False
        self._runner = loop.create_task(self._run())
        if wait:
            await asyncio.shield(self._first_attempt)

    async def close(self, *, leave: bool = True) -> None:
        """Stop; with ``leave`` the others see us leave at once (no reconnect grace)."""
        self._stopping = True
        websocket = self._websocket
        if websocket is not None:
            with contextlib.suppress(ConnectionClosed):
                if leave:
                    await websocket.send(json.dumps({"type": "leave_session"}))
                await websocket.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(RelayError("OFFLINE", "the client was closed"))
        self._pending.clear()
        self._set_state(ClientState.OFFLINE, None)

    # -- sending ---------------------------------------------------------------------------

    async def request(self, frame: dict[str, Any], *, expect: str = "ack") -> dict[str, Any]:
        """Send a frame and wait for its reply; raise RelayError if the relay refuses it.

        Durable frames are kept until acknowledged and resent after a reconnect, so
        they are never lost while offline; other requests need a live connection.
        """
        frame = {**frame, "id": frame.get("id") or uuid.uuid4().hex[:16]}
        durable = frame["type"] in DURABLE_CLIENT_TYPES
        if self.failure is not None:
            raise self.failure  # refused for good (removed, ended...): nothing would be sent
        if not durable and self.state is not ClientState.CONNECTED:
            raise RelayError("OFFLINE", "not connected to the relay; try again when connected")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[frame["id"]] = _Pending(frame, future, expect, durable)
        if self.state is ClientState.CONNECTED:
            await self._send(frame)
        return await future

    async def fetch_all_comments(self) -> list[dict[str, Any]]:
        """Every comment of the session (roots and replies, resolved too), oldest first.

        ``connected`` carries only the recent history; threads are paged in by seq.
        """
        comments: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.request(
                {"type": "get_comments", "after_seq": after}, expect="comments"
            )
            comments.extend(page["comments"])
            if not page["has_more"] or not page["comments"]:
                return comments
            after = int(page["comments"][-1]["seq"])

    def pending_ids(self) -> list[str]:
        """Durable frames sent (or queued) but not yet acknowledged."""
        return [key for key, pending in self._pending.items() if pending.durable]

    async def send_presence(self, frame: dict[str, Any]) -> None:
        """Send a cursor or presence frame; the latest of each kind is re-sent on reconnect."""
        key = frame["type"]
        if key == "presence_update" and key in self._presence:
            frame = {**self._presence[key], **frame}
        self._presence[key] = frame
        if self.state is ClientState.CONNECTED:
            await self._send(frame)

    async def _send(self, frame: dict[str, Any]) -> None:
        websocket = self._websocket
        if websocket is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await websocket.send(json.dumps(frame))

    # -- the connection loop ----------------------------------------------------------------

    async def _run(self) -> None:
        self._set_state(ClientState.CONNECTING, None)
        while not self._stopping:
            try:
                await self._connect_once()
            except RelayError as error:
                if error.fatal:
                    self._fail(error)
                    return
                self._reconnecting(str(error))
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed, _Dropped) as error:
                self._reconnecting(_describe(error))
            except InvalidURI as error:
                self._fail(RelayError("INVALID_URL", str(error)))
                return
            except Exception as error:  # a relay speaking nonsense: retry, never die
                log.warning("unexpected answer from the relay", exc_info=True)
                self._reconnecting(f"the relay sent something unreadable ({error})")
            if self._stopping:
                return
            await asyncio.sleep(self.backoff.next_delay())

    def _url(self) -> str:
        query: dict[str, str] = {"token": self.token}
        if self.last_seq is not None:
            query["resume_from"] = str(self.last_seq)
        if self.epoch is not None:
            query["epoch"] = self.epoch
        if self.name:
            query["name"] = self.name
        return f"{self.relay_url}/ws/session/{self.session_id}?{urlencode(query)}"

    async def _connect_once(self) -> None:
        if self.session_id is None:
            raise RelayError(
                "INVALID_TOKEN", "the token names no session: pass the session id to join"
            )
        async with websockets.connect(
            self._url(), open_timeout=self.open_timeout, max_size=2**24
        ) as websocket:
            first = json.loads(await asyncio.wait_for(websocket.recv(), self.open_timeout))
            if first.get("type") == "error":
                refusal = RelayError.from_frame(first)
                if refusal.code not in _RETRYABLE_AT_JOIN:
                    refusal.code_is_final = True
                raise refusal
            self._websocket = websocket
            self._joined(first)
            for pending in list(self._pending.values()):
                if pending.durable:
                    pending.parked = False
                    await self._send(pending.frame)
            for frame in self._presence.values():
                await self._send(frame)
            try:
                async for raw in websocket:
                    self._receive(raw)
            except ConnectionClosed:
                pass  # the close code decides below whether to come back
            finally:
                self._websocket = None
            self._after_close(websocket)

    def _joined(self, connected: dict[str, Any]) -> None:
        self.connected_frame = connected
        you = connected.get("you", {})
        if you.get("token"):
            self.token = you["token"]  # an invite was redeemed: reconnect as ourselves
        if not connected.get("resumed"):
            self.last_seq = connected.get("seq")
        self.epoch = connected.get("epoch")
        self.backoff.reset()
        self.failure = None
        self.on_frame(connected)  # first, so whoever hears "connected" sees the snapshot
        self._set_state(ClientState.CONNECTED, None)
        if self._first_attempt is not None and not self._first_attempt.done():
            self._first_attempt.set_result(None)

    def _receive(self, raw: str | bytes) -> None:
        """A frame we cannot read is logged and skipped: garbage never stops the client."""
        try:
            frame = json.loads(raw)
            if not isinstance(frame, dict):
                raise ValueError("not a JSON object")
            self._dispatch(frame)
        except (ValueError, KeyError, TypeError) as error:
            log.warning("ignored an unreadable frame from the relay: %s", error)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "service_status" and frame.get("available"):
            self._resend_parked()
        if kind in _REPLY_TYPES and frame.get("ref") in self._pending:
            if self._park(frame):
                return
            pending = self._pending.pop(frame["ref"])
            if pending.future.done():
                return
            if kind == "error":
                pending.future.set_exception(RelayError.from_frame(frame))
            elif kind != pending.expect:
                pending.future.set_exception(
                    RelayError("UNEXPECTED_REPLY", f"expected {pending.expect}, got {kind}")
                )
            else:
                pending.future.set_result(frame)
            return
        if "seq" in frame and kind not in _NOT_SEQUENCED:
            self.last_seq = max(self.last_seq or 0, int(frame["seq"]))
        self.on_frame(frame)

    def _park(self, reply: dict[str, Any]) -> bool:
        """Keep a durable frame the relay could not store, to send it again later."""
        pending = self._pending[reply["ref"]]
        if not (
            self.park_unstored
            and pending.durable
            and reply.get("type") == "error"
            and reply.get("error_code") == ErrorCode.STORE_UNAVAILABLE.value
        ):
            return False
        pending.parked = True
        return True

    def _resend_parked(self) -> None:
        for pending in self._pending.values():
            if pending.parked:
                pending.parked = False
                task = asyncio.get_running_loop().create_task(self._send(pending.frame))
                self._resending.add(task)
                task.add_done_callback(self._resending.discard)

    def _after_close(self, websocket: ClientConnection) -> None:
        code = websocket.close_code
        reason = websocket.close_reason or ""
        if code in _FATAL_CLOSES:
            errors = {
                CloseCode.REMOVED: ErrorCode.REMOVED,
                CloseCode.SESSION_ENDED: ErrorCode.SESSION_ENDED,
                CloseCode.SESSION_NOT_FOUND: ErrorCode.SESSION_NOT_FOUND,
            }
            raise RelayError(errors.get(CloseCode(code), ErrorCode.INVALID_TOKEN), reason)
        raise _Dropped(f"the relay closed the connection ({code} {reason})".strip())

    def _reconnecting(self, detail: str) -> None:
        if self._stopping:
            return
        log.info("relay connection lost (%s); reconnecting", detail)
        self._set_state(ClientState.RECONNECTING, detail)
        if self._first_attempt is not None and not self._first_attempt.done():
            self._first_attempt.set_result(None)

    def _fail(self, error: RelayError) -> None:
        self.failure = error
        self._set_state(ClientState.OFFLINE, str(error))
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()
        if self._first_attempt is not None and not self._first_attempt.done():
            self._first_attempt.set_exception(error)

    def _set_state(self, state: ClientState, detail: str | None) -> None:
        if state is self.state and state is not ClientState.RECONNECTING:
            return
        self.state = state
        self.on_state(state, detail)


def _session_of(token: str) -> str | None:
    """The session a token names (read without verifying: the relay verifies)."""
    # Decoded by hand: importing PyJWT pulls in `cryptography` (~10 MiB resident).
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    sid = claims.get("sid")
    return sid if isinstance(sid, str) else None


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "the relay refused the connection (is it running?)"
    if isinstance(error, TimeoutError):
        return "the relay did not answer in time"
    return str(error) or type(error).__name__
