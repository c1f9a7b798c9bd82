"""The relay: accepts WebSocket connections, joins them to rooms, serves /healthz and /metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Coroutine
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from collab_lsp.logs import mask_token_loggers
from collab_lsp.protocol import limits
from collab_lsp.protocol.client_frames import CreateSession, JoinSession
from collab_lsp.protocol.codec import parse_client_frame, utc_now
from collab_lsp.protocol.colors import color_index
from collab_lsp.protocol.errors import CloseCode, ErrorCode, ProtocolError
from collab_lsp.protocol.models import SessionStatus
from collab_lsp.protocol.presence import PresenceBook
from collab_lsp.protocol.server_frames import (
    Connected,
    Pong,
    ServerShutdown,
    SessionCreated,
    You,
)
from collab_lsp.relay.admission import (
    admit,
    bearer,
    close_code_for,
    join_from_query,
    replay_for,
    verify,
)
from collab_lsp.relay.auth import Authenticator
from collab_lsp.relay.config import RelayConfig
from collab_lsp.relay.connection import Connection
from collab_lsp.relay.handlers import FrameHandlers, error_frame
from collab_lsp.relay.metrics import Metrics
from collab_lsp.relay.ratelimit import SlidingWindow
from collab_lsp.relay.room import Room
from collab_lsp.relay.store import make_store
from collab_lsp.relay.store.base import CommittedEvent, Store, StoreUnavailable

__all__ = ["Relay"]

log = logging.getLogger("collab_lsp.relay")

_SESSION_PATH = re.compile(r"^/ws/session/([A-Za-z0-9_\-]{1,64})/?$")
_HARD_FRAME_LIMIT = 1024 * 1024


class Relay:
    def __init__(self, config: RelayConfig, store: Store | None = None) -> None:
        self.config = config
        self.store: Store = store or make_store(config)
        self.metrics = Metrics()
        self.rooms: dict[str, Room] = {}
        self.connections: set[Connection] = set()
        self.auth: Authenticator | None = None
        self.handlers = FrameHandlers(self)
        self._durable_limits: dict[str, SlidingWindow] = {}
        self._server: Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._provider_key = (
            Path(config.jwt_public_key_file).read_text(encoding="utf-8")
            if config.jwt_public_key_file
            else None
        )
        self.port = 0
        mask_token_loggers("websockets", "websockets.server", "collab_lsp", "collab_lsp.relay")

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        self.store.add_listener(self._on_commit)
        secret = self.config.secret or await self.store.relay_secret()
        self.auth = Authenticator(
            secret,
            provider_key=self._provider_key,
            jwks_url=self.config.jwks_url,
            provider_audience=self.config.jwt_audience,
        )
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            compression="deflate" if self.config.compression else None,
            max_size=max(_HARD_FRAME_LIMIT, self.config.max_frame_bytes),
            max_queue=64,
            write_limit=64 * 1024,
            server_header="collab-relay",
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_presence())
        log.info("relay listening on %s (store epoch %s)", self.url, self.store.epoch)

    @property
    def url(self) -> str:
        return self.config.ws_url(self.port)

    async def stop(self, reason: str = "relay is shutting down") -> None:
        """Tell every client, close them, flush the store."""
        if self._stopping:
            return
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close(close_connections=False)
        notice = ServerShutdown(reason=reason).model_dump_json()
        for connection in list(self.connections):
            connection.send_control(notice)
            connection.close_after_flush(CloseCode.SERVICE_RESTART, reason)
        for room in self.rooms.values():
            for member in room.members.values():
                if member.leave_timer is not None:
                    member.leave_timer.cancel()
                    member.leave_timer = None
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), timeout=5)
            except TimeoutError:
                log.warning("some connections did not close in time")
        await self.store.close()
        log.info("relay stopped")

    # -- HTTP on the same port -----------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            healthy = self._healthy()
            status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
            return connection.respond(status, "ok\n" if healthy else "store unavailable\n")
        if path == "/metrics":
            text = self.metrics.render(
                open_connections=len(self.connections),
                participants_per_session={
                    sid: len(room.online()) for sid, room in self.rooms.items()
                },
                healthy=self._healthy,
            )
            response = connection.respond(HTTPStatus.OK, text)
            del response.headers["Content-Type"]  # Headers keeps repeated keys: replace it
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        if path != "/ws" and not _SESSION_PATH.match(path):
            return connection.respond(
                HTTPStatus.NOT_FOUND, "not found: connect to /ws or /ws/session/{id}\n"
            )
        return None

    def _healthy(self) -> bool:
        return not self._stopping and self.store.healthy

    # -- connections ---------------------------------------------------------------------------

    async def _handle(self, websocket: ServerConnection) -> None:
        connection = Connection(
            websocket,
            self.metrics,
            durable_limit=self.config.durable_backlog_limit,
            max_errors_per_minute=self.config.max_errors_per_minute,
        )
        self.connections.add(connection)
        self.metrics.connections_total += 1
        try:
            if await self._join_from_request(connection):
                connection.start_sender()
                await self._receive(connection)
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(connection)
            await connection.stop_sender()
            self.metrics.connection_duration.observe(time.monotonic() - connection.opened_at)
            self._detach(connection)

    async def _join_from_request(self, connection: Connection) -> bool:
        request = connection.websocket.request
        assert request is not None
        parts = urlsplit(request.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        token = query.get("token") or bearer(request.headers)
        match = _SESSION_PATH.match(parts.path)
        try:
            if match:
                frame = join_from_query(match.group(1), query, token)
                await self.join(connection, frame, token)
                return True
            return await self._join_by_frame(connection, token)
        except ProtocolError as error:
            await self._refuse(connection, error)
            return False
        except StoreUnavailable as error:
            await self._refuse(connection, ProtocolError(ErrorCode.STORE_UNAVAILABLE, str(error)))
            return False

    async def _join_by_frame(self, connection: Connection, header_token: str | None) -> bool:
        """On /ws the first frame must be join_session or create_session (or ping)."""
        deadline = time.monotonic() + self.config.join_timeout_seconds
        while True:
            remaining = deadline - time.monotonic()
            try:
                raw = await asyncio.wait_for(connection.websocket.recv(), timeout=remaining)
            except TimeoutError:
                await connection.websocket.close(
                    CloseCode.JOIN_TIMEOUT, "send join_session or create_session first"
                )
                return False
            try:
                frame = parse_client_frame(raw)
            except ProtocolError as error:
                if not await self._pre_join_error(connection, error, None):
                    return False
                continue
            if isinstance(frame, JoinSession):
                await self.join(connection, frame, frame.auth_token or header_token)
                return True
            if isinstance(frame, CreateSession):
                await self._create_session(connection, frame, frame.auth_token or header_token)
                return True
            if frame.type == "ping":
                pong = Pong(ref=frame.id, timestamp=utc_now())
                await connection.websocket.send(pong.model_dump_json(exclude_none=True))
                continue
            refusal = ProtocolError(
                ErrorCode.NOT_JOINED,
                f"join a session before sending {frame.type}: send join_session first",
            )
            if not await self._pre_join_error(connection, refusal, frame.id):
                return False

    async def _pre_join_error(
        self, connection: Connection, error: ProtocolError, ref: str | None
    ) -> bool:
        """Answer a bad frame before joining; False once the error budget is spent."""
        self.metrics.errors[error.code] += 1
        await self._send_error_direct(connection, error, ref)
        if connection.error_budget.check(time.monotonic()) > 0:
            await connection.websocket.close(CloseCode.TOO_MANY_ERRORS, "too many invalid frames")
            return False
        return True

    async def _create_session(
        self, connection: Connection, frame: CreateSession, token: str | None
    ) -> None:
        assert self.auth is not None
        claims = verify(self.auth, token)
        if claims.sub is None or claims.sid is not None or claims.is_invite:
            raise ProtocolError(
                ErrorCode.PERMISSION_DENIED,
                "only a team token (one that names no session) may create a session",
            )
        session = await self.store.create_session(
            title=frame.title,
            host_id=claims.sub,
            host_name=claims.name or claims.sub,
            host_kind=claims.kind,
        )
        created = SessionCreated(ref=frame.id, session=session, timestamp=utc_now())
        await connection.websocket.send(created.model_dump_json())
        join = JoinSession(type="join_session", session_id=session.id)
        await self.join(connection, join, token)

    async def join(self, connection: Connection, frame: JoinSession, token: str | None) -> None:
        """Authenticate, authorize and attach a connection; queue its snapshot and replay."""
        assert self.auth is not None
        identity = await admit(self.store, self.auth, verify(self.auth, token), frame)
        room = await self._room(frame.session_id)
        if room is None:
            raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, f"no session {frame.session_id!r}")
        connection.user_id, connection.username = identity.user_id, identity.username
        record, _ = await self.store.join(
            frame.session_id,
            user_id=identity.user_id,
            username=identity.username,
            kind=identity.kind,
            role=identity.role,
            announce=room.needs_announcement(identity.user_id),
        )
        room.attach(connection, record)
        connection.room = room
        await self._send_snapshot(connection, room, frame, identity.personal_token)

    async def _room(self, session_id: str) -> Room | None:
        room = self.rooms.get(session_id)
        if room is not None:
            return room
        session = await self.store.get_session(session_id)
        if session is None:
            return None
        participants = await self.store.list_participants(session_id)
        last_seq = await self.store.last_seq(session_id)
        room = self.rooms.get(session_id)  # another join may have won the race
        if room is None:
            presence = PresenceBook(
                cursor_interval=self.config.cursor_interval_seconds,
                status_interval=self.config.presence_interval_seconds,
                idle_after=self.config.idle_after_seconds,
                away_after=self.config.away_after_seconds,
            )
            room = Room(session, participants, presence, self.metrics, last_seq=last_seq)
            self.rooms[session_id] = room
        return room

    async def _send_snapshot(
        self, connection: Connection, room: Room, frame: JoinSession, personal_token: str | None
    ) -> None:
        snapshot = await self.store.snapshot(room.session_id, limits.RECENT_MESSAGES)
        if snapshot is None:
            raise ProtocolError(ErrorCode.SESSION_NOT_FOUND, "the session disappeared")
        replay, resumed, reset = await replay_for(self.store, frame, snapshot.seq)
        record = room.members[connection.user_id].record
        connected = Connected(
            session_id=room.session_id,
            session=snapshot.session,
            you=You(
                id=record.user_id,
                username=record.username,
                role=record.role,
                kind=record.kind,
                color_index=color_index(record.user_id),
                token=personal_token,
            ),
            participants=room.participants(),
            presence=room.presence.snapshot(),
            messages=[] if resumed else snapshot.messages,
            seq=snapshot.seq,
            epoch=self.store.epoch,
            resumed=resumed,
            reset=reset,
            timestamp=utc_now(),
        )
        base_seq = frame.resume_from if resumed and frame.resume_from is not None else snapshot.seq
        if not connection.outbox.release(
            [connected.model_dump_json(exclude_none=True)], replay, base_seq
        ):
            self.metrics.slow_consumers_closed += 1
            connection.close_now(CloseCode.SLOW_CONSUMER, "too far behind: resume from last seq")

    async def _receive(self, connection: Connection) -> None:
        async for raw in connection.websocket:
            await self.handlers.handle(connection, raw)

    def _detach(self, connection: Connection) -> None:
        room = connection.room
        if room is None or not room.detach(connection):
            return
        user_id = connection.user_id
        member = room.members.get(user_id)
        if self._stopping or member is None or member.record.removed:
            self._drop_room_if_idle(room)
            return
        if room.session.status is SessionStatus.ENDED:
            room.confirm_leave(user_id)
            self._drop_room_if_idle(room)
            return
        grace = 0.0 if connection.left_on_purpose else self.config.reconnect_grace_seconds
        reason = "left" if connection.left_on_purpose else "timeout"
        room.schedule_leave(
            user_id, grace, lambda: self._spawn(self._finish_leave(room, user_id, reason))
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_leave(self, room: Room, user_id: str, reason: str) -> None:
        if self._stopping or not room.confirm_leave(user_id):
            return
        try:
            await self.store.leave(room.session_id, user_id, reason)
        except (ProtocolError, StoreUnavailable) as error:
            log.info("could not record that %s left: %s", user_id, error)
        self._drop_room_if_idle(room)

    def _drop_room_if_idle(self, room: Room) -> None:
        if room.is_empty() and self.rooms.get(room.session_id) is room:
            del self.rooms[room.session_id]

    # -- delivery ---------------------------------------------------------------------------

    def _on_commit(self, event: CommittedEvent) -> None:
        room = self.rooms.get(event.session_id)
        if room is None:
            return
        for slow in room.deliver(event):
            if not slow.closing:
                self.metrics.slow_consumers_closed += 1
                slow.close_now(CloseCode.SLOW_CONSUMER, "too far behind: resume from your last seq")

    def enforce(self, room: Room, event: CommittedEvent) -> None:
        """Disconnect whom a removal or the end of the session concerns.

        Called after the requester's ack is queued, so the host sees its ack
        before its own connection closes when it ends the session.
        """
        if event.duplicate:
            return
        if event.type == "user_removed":
            for connection in room.connections_of(event.frame["user_id"]):
                connection.close_after_flush(CloseCode.REMOVED, "you were removed from the session")
        elif event.type == "session_ended":
            room.close_all(CloseCode.SESSION_ENDED, "the session has ended")

    async def _sweep_presence(self) -> None:
        while True:
            await asyncio.sleep(self.config.presence_sweep_seconds)
            for room in list(self.rooms.values()):
                room.sweep_presence()
                try:
                    await self._catch_up(room)
                except StoreUnavailable as error:
                    log.warning("cannot read the store: %s", error)

    async def _catch_up(self, room: Room) -> None:
        """Deliver events another process wrote (say `collab-relay session end`)."""
        if await self.store.last_seq(room.session_id) <= room.last_seq:
            return
        for seq, wire in await self.store.events_after(room.session_id, room.last_seq, 1000):
            frame = json.loads(wire)
            event = CommittedEvent(room.session_id, frame["id"], seq, frame["type"], frame, wire)
            self._on_commit(event)
            self.enforce(room, event)

    # -- rate limits and errors ---------------------------------------------------------------

    def durable_limit(self, user_id: str) -> SlidingWindow:
        window = self._durable_limits.get(user_id)
        if window is None:
            window = SlidingWindow(self.config.durable_rate_per_minute, 60.0)
            self._durable_limits[user_id] = window
        return window

    async def _refuse(self, connection: Connection, error: ProtocolError) -> None:
        """Refuse a connection that could not join: say why, then close with a matching code."""
        self.metrics.errors[error.code] += 1
        try:
            await self._send_error_direct(connection, error, None)
            await connection.websocket.close(close_code_for(error.code), error.message[:120])
        except ConnectionClosed:
            pass

    async def _send_error_direct(
        self, connection: Connection, error: ProtocolError, ref: str | None
    ) -> None:
        await connection.websocket.send(error_frame(error, ref))
