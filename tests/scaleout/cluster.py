"""Several `collab-relay serve` processes sharing one PostgreSQL schema and one Redis prefix.

Each relay is a real subprocess (so it can be killed with -9), configured only through
``COLLAB_RELAY_*`` variables as an operator would. Expiry and sweep intervals are short so
the tests see a dead relay's users leave in seconds, not the production 15 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from collab_lsp.protocol.models import ParticipantKind
from collab_lsp.relay.store.postgres import PostgresStore
from tests.helpers import TIMEOUT
from tests.relay.relay_process import (
    READY_PREFIX,
    SECRET,
    RelayProcess,
    cli_command,
    cli_env,
)
from tests.services import PG_DSN, REDIS_URL

FAST_PRESENCE = {
    "COLLAB_RELAY_PRESENCE_EXPIRY_SECONDS": "3",
    "COLLAB_RELAY_PRESENCE_SWEEP_SECONDS": "0.5",
    "COLLAB_RELAY_RECONNECT_GRACE_SECONDS": "2",
}


@dataclass
class Cluster:
    folder: Path
    schema: str
    prefix: str
    redis_url: str = REDIS_URL
    database_url: str = PG_DSN
    extra_env: dict[str, str] = field(default_factory=dict)
    relays: list[RelayProcess] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            "COLLAB_RELAY_DATABASE_URL": self.database_url,
            "COLLAB_RELAY_DATABASE_SCHEMA": self.schema,
            "COLLAB_RELAY_REDIS_URL": self.redis_url,
            "COLLAB_RELAY_REDIS_PREFIX": self.prefix,
            "COLLAB_RELAY_SECRET": SECRET,
            "COLLAB_RELAY_PORT": "0",
            "COLLAB_RELAY_LOG_LEVEL": "INFO",
            **FAST_PRESENCE,
            **self.extra_env,
            **overrides,
        }

    async def start(self, **overrides: str) -> RelayProcess:
        index = len(self.relays)
        log_path = self.folder / f"relay-{index}.log"
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            process = await asyncio.create_subprocess_exec(
                *cli_command("serve"),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=cli_env(**self.env(**overrides)),
            )
        finally:
            os.close(log)
        assert process.stdout is not None
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT * 2)).decode()
        except BaseException:
            await _stop(process)
            raise
        if not line.startswith(READY_PREFIX):
            await _stop(process)
            raise AssertionError(f"relay {index} did not start: {line!r}\n{log_path.read_text()}")
        relay = RelayProcess(process, line.removeprefix(READY_PREFIX).strip(), SECRET)
        self.relays.append(relay)
        return relay

    async def create_session(self, host: str = "alice", title: str = "Scale-out") -> str:
        store = PostgresStore(self.database_url, schema=self.schema)
        await store.open()
        try:
            session = await store.create_session(
                title=title, host_id=host, host_name=host, host_kind=ParticipantKind.HUMAN
            )
            return session.id
        finally:
            await store.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- relay-{i}.log\n{(self.folder / f'relay-{i}.log').read_text()}"
            for i in range(len(self.relays))
        )

    async def close(self) -> None:
        for relay in self.relays:
            with contextlib.suppress(Exception):
                await relay.close()


async def _stop(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()


@contextlib.asynccontextmanager
async def cluster(
    folder: Path, schema: str, prefix: str, **settings: str
) -> AsyncIterator[Cluster]:
    group = Cluster(folder, schema, prefix, extra_env=settings)
    try:
        yield group
    finally:
        await group.close()


async def health(relay: RelayProcess) -> tuple[int, str]:
    """GET /healthz: the status code and the body."""

    def get() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{relay.http}/healthz", timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()

    return await asyncio.to_thread(get)


async def until_health(relay: RelayProcess, status: int) -> str:
    """Poll /healthz until it answers ``status``; return the body."""
    async with asyncio.timeout(TIMEOUT * 2):
        while True:
            code, body = await health(relay)
            if code == status:
                return body
            await asyncio.sleep(0.1)
