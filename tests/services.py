"""The real services the scale-out tests use: PostgreSQL, Redis, and ways to lose them.

The machine's shared PostgreSQL and Redis are used with a fresh schema and a fresh key
prefix per test, so runs never see each other's data. Outage tests never stop the shared
services: they run a private ``redis-server`` on a free port, or put a ``TcpProxy`` they
can cut between the relays and PostgreSQL. A missing service fails the test with the
reason; nothing here skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.helpers import TIMEOUT

PG_DSN = os.environ.get("COLLAB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("COLLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.asynccontextmanager
async def fresh_pg_schema() -> AsyncIterator[str]:
    """A schema name nobody used, dropped at the end."""
    try:
        admin = await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_DSN}: {exc}")
    name = f"test_{uuid.uuid4().hex[:16]}"
    try:
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_redis_prefix(url: str = REDIS_URL) -> AsyncIterator[str]:
    """A key prefix nobody used; its keys are deleted at the end."""
    redis = Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        pytest.fail(f"Redis is not reachable at {url}: {exc}")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        with contextlib.suppress(RedisError, OSError):
            keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
            if keys:
                await redis.delete(*keys)
        await redis.aclose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of the test's own, on a free port, that can be stopped and restarted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (Debian package redis-server)")
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        redis = Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    with contextlib.suppress(RedisError, OSError):
                        if await redis.ping():
                            return
                    await asyncio.sleep(0.05)
        finally:
            await redis.aclose()

    async def stop(self) -> None:
        """kill -9, like a crash: everything it held is gone."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def private_redis(folder: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(folder)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class TcpProxy:
    """A TCP forwarder to a real server that can be cut and restored on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every forwarded connection."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()


def postgres_proxy() -> TcpProxy:
    parts = urlsplit(PG_DSN)
    return TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)


def dsn_through(proxy: TcpProxy) -> str:
    """PG_DSN with its host and port replaced by the proxy's."""
    parts = urlsplit(PG_DSN)
    credentials = parts.netloc.rsplit("@", 1)
    where = f"127.0.0.1:{proxy.port}"
    netloc = f"{credentials[0]}@{where}" if len(credentials) > 1 else where
    return urlunsplit(parts._replace(netloc=netloc))
