"""The broker for several relays: Redis pub/sub, a presence registry, shared rate limits.

Keys and channels, all under the configured prefix ``P``:

- ``P:s:{session}`` — channel: every event committed and every coalesced presence
  change, as ``{"r": relay, "k": kind, ...}`` (kinds: ``e`` event, ``p`` presence,
  ``on`` arrival, ``off`` departure). A relay subscribes while it has the session open.
- ``P:presence:{session}`` — hash: ``"{relay}|{user}"`` → the user's latest
  ``presence_update`` frame (empty until they move).
- ``P:relay:{relay}`` — a liveness key each relay renews every third of the expiry.
  Entries of a relay whose key has been missing for half the expiry more (a relay
  re-registering after a Redis restart gets that long to renew it) are claimed (``HDEL``
  returns 1 to exactly one relay) and their users are marked as left unless they are
  connected elsewhere. A dead relay's users therefore leave after 1.5 x the expiry.
- ``P:rate:{user}`` — a sorted set: the sliding window of durable writes, shared by
  every relay, counted atomically by a Lua script with Redis's own clock.

One task owns the pub/sub connection (subscribe, unsubscribe, read, reconnect), one
publishes in order through pipelined batches, one renews liveness. Redis holds nothing
durable: after a Redis restart each relay registers its users again and reads what it
missed from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from collab_lsp.relay.broker import (
    BrokerListener,
    BrokerStats,
    BrokerUnavailable,
    PresenceRoll,
    RemoteEntry,
)
from collab_lsp.relay.store.base import CommittedEvent

__all__ = ["RedisBroker"]

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
_MAX_BATCH = 500
_MAX_BACKLOG = 20_000
_REGISTRY_TTL_SECONDS = 24 * 3600
# Message kinds on a session's channel, as /metrics names them.
_KINDS = {"e": "event", "p": "presence", "on": "arrival", "off": "departure"}
_SUBSCRIBE_TIMEOUT = 5.0

# KEYS[1] the user's window; ARGV: window seconds, limit, a unique member.
# Returns "0" when the write may go ahead, else the seconds to wait (as a string:
# Lua numbers returned to Redis are truncated to integers).
_SLIDING_WINDOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""

_Op = Callable[[Pipeline], object]


def _texts(entries: Mapping[Any, Any]) -> dict[str, str]:
    """A hash read with ``decode_responses``: every key and value is already text."""
    return {str(key): str(value) for key, value in entries.items()}


def redacted(url: str) -> str:
    """The Redis URL without its password, for messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    except ValueError:
        return "(unparsable Redis URL)"


class RedisBroker:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "collab",
        expiry_seconds: float = 15.0,
        relay_id: str | None = None,
    ) -> None:
        self.url = url
        self.where = redacted(url)
        self.prefix = prefix
        self.expiry_seconds = expiry_seconds
        self.relay_id = relay_id or (f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}")
        self._redis: Redis | None = None
        self._listener: BrokerListener | None = None
        self._wanted: set[str] = set()
        self._subscribed: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._changes = asyncio.Event()
        self._backlog: deque[_Op] = deque()
        self._backlog_ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = False
        self._writing = True
        self._problem: str | None = None
        self._counter = 0
        self._missing_since: dict[str, float] = {}
        self.stats = BrokerStats()

    # -- health ------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._listening and self._writing

    @property
    def problem(self) -> str | None:
        if self.healthy:
            return None
        return self._problem or f"Redis at {self.where} is unavailable"

    def _failed(self, what: str, error: BaseException) -> None:
        self.stats.failures += 1
        if self._problem is None or self.healthy:
            log.error("Redis %s failed (%s): %s", what, self.where, error)
        self._problem = f"Redis at {self.where} is unavailable ({what}: {error})"

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, listener: BrokerListener) -> None:
        self._listener = listener
        self._redis = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=5,
            # A pooled connection that a Redis restart closed fails once; retry on a new one.
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
        try:
            await self._redis.ping()
            await self._renew()
        except (RedisError, OSError) as error:
            await self._redis.aclose()
            self._redis = None
            raise BrokerUnavailable(f"cannot connect to Redis at {self.where}: {error}") from error
        self._rate_script = self._redis.register_script(_SLIDING_WINDOW)
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._tasks = [
            loop.create_task(self._listen(ready)),
            loop.create_task(self._publish()),
            loop.create_task(self._keep_alive()),
        ]
        await asyncio.wait_for(ready, timeout=_SUBSCRIBE_TIMEOUT)

    async def stop(self) -> None:
        """Flush what is queued, stop the tasks; the liveness key is left to expire.

        Letting it expire (rather than deleting it) gives this relay's users the
        reconnect grace to reach another relay before they are marked as left.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), timeout=2)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _drain(self) -> None:
        await self._idle.wait()

    # -- subscriptions -------------------------------------------------------------------

    def _channel(self, session_id: str) -> str:
        return f"{self.prefix}:s:{session_id}"

    async def watch(self, session_id: str) -> None:
        self._wanted.add(session_id)
        if session_id in self._subscribed:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(self._channel(session_id), []).append(waiter)
        self._changes.set()
        try:
            await asyncio.wait_for(waiter, timeout=_SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            # The relay reads whatever it missed from the store; go on without waiting.
            log.warning("subscribing to session %s took too long", session_id)

    async def unwatch(self, session_id: str, still_wanted: Callable[[], bool]) -> None:
        if not still_wanted():
            self._wanted.discard(session_id)
            self._changes.set()

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        delay = 0.1
        while True:
            assert self._redis is not None
            pubsub = self._redis.pubsub()
            try:
                # The control channel keeps the connection subscribed (and open) while
                # this relay has no session.
                await self._subscribe_control(pubsub)
                self._subscribed.clear()
                self._changes.set()  # subscribe again to every open session
                restored = not self._listening and ready.done()
                self._listening = True
                delay = 0.1
                if not ready.done():
                    ready.set_result(None)
                if restored and self._listener is not None:
                    log.info("Redis at %s is reachable again", self.where)
                    await self._renew()  # before registering users, or they look orphaned
                    self._listener.on_broker_restored()
                await self._read(pubsub)
            except (RedisError, OSError, TimeoutError) as error:
                self._listening = False
                self._failed("subscribe", error)
                self._release_waiters()
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _subscribe_control(self, pubsub: PubSub) -> None:
        """Subscribe and wait for Redis to confirm: only then is the connection known good."""
        control = f"{self.prefix}:relays"
        await pubsub.subscribe(control)
        async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
            while True:
                message = await pubsub.get_message(timeout=_POLL_SECONDS)
                if message is not None and message.get("type") == "subscribe":
                    return
                if not pubsub.subscribed or pubsub.connection is None:
                    raise RedisConnectionError("the subscription was not confirmed")

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            if pubsub.connection is None or not pubsub.subscribed:
                raise RedisConnectionError("the subscriber connection is gone")
            if self._changes.is_set():
                self._changes.clear()
                await self._apply_subscriptions(pubsub)
            message = await pubsub.get_message(timeout=_POLL_SECONDS)
            if message is not None:
                self._dispatch(message)

    async def _apply_subscriptions(self, pubsub: PubSub) -> None:
        joining = self._wanted - self._subscribed
        leaving = self._subscribed - self._wanted
        # Update the set before awaiting, so a watch() meanwhile sees the truth.
        self._subscribed -= leaving
        if leaving:
            await pubsub.unsubscribe(*(self._channel(s) for s in leaving))
        if joining:
            await pubsub.subscribe(*(self._channel(s) for s in joining))
            self._subscribed |= joining

    def _release_waiters(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._waiters.clear()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        if kind == "subscribe":
            for waiter in self._waiters.pop(str(channel), []):
                if not waiter.done():
                    waiter.set_result(None)
            return
        if kind != "message" or self._listener is None:
            return
        try:
            self._deliver(str(channel), json.loads(message["data"]))
        except Exception:
            log.exception("could not handle a broker message on %s", channel)

    def _deliver(self, channel: str, body: dict[str, Any]) -> None:
        assert self._listener is not None
        relay_id = body["r"]
        if relay_id == self.relay_id:
            return  # our own message, already delivered locally
        session_id = channel.removeprefix(f"{self.prefix}:s:")
        kind = body["k"]
        self.stats.received[_KINDS.get(kind, "other")] += 1
        if kind == "e":
            self._listener.on_remote_event(session_id, int(body["s"]), body["w"])
        elif kind == "p":
            self._listener.on_remote_presence(session_id, relay_id, body["u"], body["w"])
        elif kind == "on":
            self._listener.on_remote_presence(session_id, relay_id, body["u"], None)
        elif kind == "off":
            self._listener.on_remote_departure(session_id, relay_id, body["u"])

    # -- publishing ----------------------------------------------------------------------

    def _queue(self, op: _Op) -> None:
        if len(self._backlog) >= _MAX_BACKLOG:
            # Redis has been gone for a while; events are recovered from the store.
            self._backlog.popleft()
            self.stats.dropped += 1
        self._backlog.append(op)
        self._idle.clear()
        self._backlog_ready.set()

    def _message(self, session_id: str, body: dict[str, Any]) -> _Op:
        channel = self._channel(session_id)
        payload = json.dumps({"r": self.relay_id, **body}, separators=(",", ":"))
        return lambda pipe: pipe.publish(channel, payload)

    def _registry(self, session_id: str) -> str:
        return f"{self.prefix}:presence:{session_id}"

    def _field(self, user_id: str) -> str:
        return f"{self.relay_id}|{user_id}"

    def publish_event(self, event: CommittedEvent) -> None:
        self._queue(self._message(event.session_id, {"k": "e", "s": event.seq, "w": event.wire}))

    def publish_presence(self, session_id: str, user_id: str, wire: str) -> None:
        registry, field = self._registry(session_id), self._field(user_id)
        self._queue(lambda pipe: pipe.hset(registry, field, wire))
        self._queue(self._message(session_id, {"k": "p", "u": user_id, "w": wire}))

    def publish_arrival(self, session_id: str, user_id: str) -> None:
        registry, field = self._registry(session_id), self._field(user_id)

        def register(pipe: Pipeline) -> None:
            pipe.hset(registry, field, "")
            pipe.expire(registry, _REGISTRY_TTL_SECONDS)

        self._queue(register)
        self._queue(self._message(session_id, {"k": "on", "u": user_id}))

    def publish_departure(self, session_id: str, user_id: str) -> None:
        registry, field = self._registry(session_id), self._field(user_id)
        self._queue(lambda pipe: pipe.hdel(registry, field))
        self._queue(self._message(session_id, {"k": "off", "u": user_id}))

    async def _publish(self) -> None:
        while True:
            await self._backlog_ready.wait()
            self._backlog_ready.clear()
            while self._backlog:
                size = min(_MAX_BATCH, len(self._backlog))
                batch = [self._backlog.popleft() for _ in range(size)]
                try:
                    await self._send(batch)
                except (RedisError, OSError) as error:
                    self._writing = False
                    self._failed("publish", error)
                    # Dropped: durable events are read from the store by every relay's
                    # catch-up, presence is re-registered when Redis is back.
                    self.stats.dropped += len(batch) + len(self._backlog)
                    self._backlog.clear()
                else:
                    self.stats.published += len(batch)
            self._idle.set()

    async def _send(self, batch: list[_Op]) -> None:
        assert self._redis is not None
        pipe = self._redis.pipeline(transaction=False)
        for op in batch:
            op(pipe)
        await pipe.execute()

    # -- liveness ------------------------------------------------------------------------

    async def _renew(self) -> None:
        assert self._redis is not None
        key = f"{self.prefix}:relay:{self.relay_id}"
        await self._redis.set(key, "1", px=int(self.expiry_seconds * 1000))

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.expiry_seconds / 3)
            try:
                await self._renew()
            except (RedisError, OSError) as error:
                self._writing = False
                self._failed("liveness", error)
                continue
            if not self._writing:
                self._writing = True
                if self._listener is not None and self._listening:
                    log.info("Redis at %s accepts writes again", self.where)
                    self._listener.on_broker_restored()

    # -- reads ---------------------------------------------------------------------------

    async def roll(self, session_id: str) -> PresenceRoll:
        redis = self._client()
        registry = self._registry(session_id)
        try:
            entries = _texts(await redis.hgetall(registry))
            relays = sorted({field.split("|", 1)[0] for field in entries} - {self.relay_id})
            alive: set[str] = set()
            if relays:
                keys = [f"{self.prefix}:relay:{relay}" for relay in relays]
                found = await redis.mget(keys)
                alive = {relay for relay, value in zip(relays, found, strict=True) if value}
            dead = self._dead(set(relays) - alive)
            roll = PresenceRoll()
            for field, wire in entries.items():
                relay_id, _, user_id = field.partition("|")
                if relay_id == self.relay_id:
                    continue
                if relay_id not in dead:
                    roll.remote.append(RemoteEntry(relay_id, user_id, wire or None))
                elif await redis.hdel(registry, field) == 1:
                    roll.orphaned.append(user_id)
            return roll
        except (RedisError, OSError) as error:
            self._failed("presence read", error)
            raise BrokerUnavailable(f"Redis at {self.where} is unavailable: {error}") from error

    def _dead(self, missing: set[str]) -> set[str]:
        """Relays whose liveness key has been missing for long enough to call them dead."""
        now = time.monotonic()
        for relay_id in list(self._missing_since):
            if relay_id not in missing:
                del self._missing_since[relay_id]
        return {
            relay_id
            for relay_id in missing
            if now - self._missing_since.setdefault(relay_id, now) >= self.expiry_seconds / 2
        }

    async def register(self, session_id: str, users: dict[str, str | None]) -> None:
        """Replace this relay's entries for a session (after Redis lost them)."""
        redis = self._client()
        registry = self._registry(session_id)
        try:
            entries = _texts(await redis.hgetall(registry))
            pipe = redis.pipeline(transaction=False)
            for field in entries:
                relay_id, _, user_id = field.partition("|")
                if relay_id == self.relay_id and user_id not in users:
                    pipe.hdel(registry, field)
            for user_id, wire in users.items():
                pipe.hset(registry, self._field(user_id), wire or "")
            pipe.expire(registry, _REGISTRY_TTL_SECONDS)
            await pipe.execute()
        except (RedisError, OSError) as error:
            self._failed("presence write", error)
            raise BrokerUnavailable(f"Redis at {self.where} is unavailable: {error}") from error

    async def take_rate(self, user_id: str, limit: int, window: float, now: float) -> float:
        self._client()
        self._counter += 1
        member = f"{self.relay_id}:{self._counter}"
        try:
            wait = await self._rate_script(
                keys=[f"{self.prefix}:rate:{user_id}"], args=[window, limit, member]
            )
        except (RedisError, OSError) as error:
            self._failed("rate limit", error)
            raise BrokerUnavailable(f"Redis at {self.where} is unavailable: {error}") from error
        return float(wait)

    def _client(self) -> Redis:
        if self._redis is None:
            raise BrokerUnavailable("the broker is stopped")
        return self._redis
