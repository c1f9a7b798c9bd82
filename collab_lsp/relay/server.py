"""The relay: accepts WebSocket connections, joins them to rooms, serves /healthz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
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
from collab_lsp.protocol.models import SessionInfo, SessionStatus
from collab_lsp.protocol.presence import PresenceBook
from collab_lsp.protocol.server_frames import (
    Connected,
    Pong,
    ServerShutdown,
    ServiceStatus,
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
from collab_lsp.relay.broker import Broker, BrokerUnavailable, LocalBroker, PresenceRoll
from collab_lsp.relay.config import RelayConfig
from collab_lsp.relay.connection import Connection
from collab_lsp.relay.event_flow import EventFlow
from collab_lsp.relay.handlers import FrameHandlers, error_frame
from collab_lsp.relay.metrics import Metrics
from collab_lsp.relay.redis_broker import RedisBroker
from collab_lsp.relay.room import Room
from collab_lsp.relay.store import make_store
from collab_lsp.relay.store.base import (
    ParticipantRecord,
    Store,
    StoreUnavailable,
)

__all__ = ["Relay"]

log = logging.getLogger("collab_lsp.relay")

_SESSION_PATH = re.compile(r"^/ws/session/([A-Za-z0-9_\-]{1,64})/?$")
_HARD_FRAME_LIMIT = 1024 * 1024
_HEALTH_CHECK_SECONDS = 0.5


class Relay:
    def __init__(
        self, config: RelayConfig, store: Store | None = None, broker: Broker | None = None
    ) -> None:
        self.config = config
        self.store: Store = store or make_store(config)
        self.broker: Broker = broker or _make_broker(config)
        self.metrics = Metrics()
        self.rooms: dict[str, Room] = {}
        self.connections: set[Connection] = set()
        self.auth: Authenticator | None = None
        self.handlers = FrameHandlers(self)
        self.events = EventFlow(self)
        self._opening: set[str] = set()
        self._server: Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._health_watch: asyncio.Task[None] | None = None
        self._problem: str | None = None
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
        try:
            await self.broker.start(self.events)
        except BaseException:
            await self.store.close()
            raise
        self.store.add_listener(self.events.on_commit)
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
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self.events.sweep_presence())
        self._health_watch = loop.create_task(self._watch_health())
        shared = "" if isinstance(self.broker, LocalBroker) else f", {self.broker.relay_id}"
        log.info("relay listening on %s (store epoch %s%s)", self.url, self.store.epoch, shared)

    @property
    def url(self) -> str:
        return self.config.ws_url(self.port)

    async def stop(self, reason: str = "relay is shutting down") -> None:
        """Tell every client, close them, flush the store."""
        if self._stopping:
            return
        self._stopping = True
        for task in (self._sweeper, self._health_watch):
            if task is not None:
                task.cancel()
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
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.broker.stop()
        await self.store.close()
        log.info("relay stopped")

    # -- HTTP on the same port -----------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            problem = self.problem()
            if problem is None:
                return connection.respond(HTTPStatus.OK, "ok\n")
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, problem + "\n")
        if path == "/metrics":
            text = self.metrics.render(
                open_connections=len(self.connections),
                participants_per_session={
                    sid: len(room.online()) for sid, room in self.rooms.items()
                },
                healthy=self._healthy,
                store_commits=self.store.commits,
                store_writes=self.store.committed_writes,
                broker=self.broker.stats,
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
        return self.problem() is None

    def problem(self) -> str | None:
        """Why this relay cannot serve durable writes now; None when it can."""
        if self._stopping:
            return "the relay is shutting down"
        if not self.store.healthy:
            return "the database is unavailable"
        return self.broker.problem

    async def _watch_health(self) -> None:
        """Tell every client when durable writes stop or start working, and heal the flag."""
        while True:
            await asyncio.sleep(_HEALTH_CHECK_SECONDS)
            # Report what was seen before probing, so every outage is announced even
            # when the probe finds the database back already.
            problem = self.problem()
            if not self.store.healthy:
                with contextlib.suppress(StoreUnavailable):
                    await self.store.probe()
            if problem != self._problem:
                self._problem = problem
                notice = self._service_status()
                for connection in list(self.connections):
                    if connection.room is not None:
                        connection.send_control(notice)
                if problem is None:
                    log.info("durable writes work again")
                    self.spawn(self.events.catch_up_all())
                else:
                    log.warning("durable writes refused: %s", problem)

    def _service_status(self) -> str:
        return ServiceStatus(
            available=self._problem is None, reason=self._problem, timestamp=utc_now()
        ).model_dump_json(exclude_none=True)

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
            await connection.pipeline.settled()  # its last messages are committed or refused
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
        except (StoreUnavailable, BrokerUnavailable) as error:
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
        first_here = not room.connections_of(identity.user_id)
        room.attach(connection, record)
        connection.room = room
        if first_here:
            self.broker.publish_arrival(room.session_id, identity.user_id)
        await self._send_snapshot(connection, room, frame, identity.personal_token)

    async def _room(self, session_id: str) -> Room | None:
        room = self.rooms.get(session_id)
        if room is not None:
            return room
        self._opening.add(session_id)
        try:
            # Subscribe before reading last_seq: any later commit then reaches the room.
            await self.broker.watch(session_id)
            session = await self.store.get_session(session_id)
            if session is None:
                return None
            participants = await self.store.list_participants(session_id)
            last_seq = await self.store.last_seq(session_id)
            try:
                roll = await self.broker.roll(session_id)
            except BrokerUnavailable as error:
                # Join anyway; the sweep learns who is elsewhere once Redis is back.
                log.warning("cannot read who else is connected: %s", error)
                roll = PresenceRoll()
            room = self.rooms.get(session_id)  # another join may have won the race
            if room is None:
                room = self._new_room(session, participants, last_seq)
                room.replace_remote(roll.remote)
                self.rooms[session_id] = room
            return room
        finally:
            self._opening.discard(session_id)
            if session_id not in self.rooms:
                self._unwatch(session_id)

    def _new_room(
        self, session: SessionInfo, participants: list[ParticipantRecord], last_seq: int
    ) -> Room:
        presence = PresenceBook(
            cursor_interval=self.config.cursor_interval_seconds,
            status_interval=self.config.presence_interval_seconds,
            idle_after=self.config.idle_after_seconds,
            away_after=self.config.away_after_seconds,
        )
        session_id = session.id

        def publish(user_id: str, wire: str) -> None:
            self.broker.publish_presence(session_id, user_id, wire)

        return Room(
            session,
            participants,
            presence,
            self.metrics,
            last_seq=last_seq,
            publish_presence=publish,
        )

    def _unwatch(self, session_id: str) -> None:
        def still_wanted() -> bool:
            return session_id in self.rooms or session_id in self._opening

        self.spawn(self.broker.unwatch(session_id, still_wanted))

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
            presence=room.presence_snapshot(),
            messages=[] if resumed else snapshot.messages,
            seq=snapshot.seq,
            epoch=self.store.epoch,
            resumed=resumed,
            reset=reset,
            timestamp=utc_now(),
        )
        base_seq = frame.resume_from if resumed and frame.resume_from is not None else snapshot.seq
        first = [connected.model_dump_json(exclude_none=True)]
        if self._problem is not None:
            first.append(self._service_status())
        if not connection.outbox.release(first, replay, base_seq):
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
            user_id, grace, lambda: self.spawn(self._finish_leave(room, user_id, reason))
        )

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_leave(self, room: Room, user_id: str, reason: str) -> None:
        if self._stopping or not room.confirm_leave(user_id):
            return
        self.broker.publish_departure(room.session_id, user_id)
        if not room.is_online(user_id):  # not still connected to another relay
            await self.record_leave(room, user_id, reason)
        self._drop_room_if_idle(room)

    async def record_leave(self, room: Room, user_id: str, reason: str) -> None:
        try:
            await self.store.leave(room.session_id, user_id, reason)
        except (ProtocolError, StoreUnavailable) as error:
            log.info("could not record that %s left: %s", user_id, error)

    def _drop_room_if_idle(self, room: Room) -> None:
        if room.is_empty() and self.rooms.get(room.session_id) is room:
            del self.rooms[room.session_id]
            self._unwatch(room.session_id)

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


def _make_broker(config: RelayConfig) -> Broker:
    if config.redis_url:
        return RedisBroker(
            config.redis_url,
            prefix=config.redis_prefix,
            expiry_seconds=config.presence_expiry_seconds,
        )
    return LocalBroker()
