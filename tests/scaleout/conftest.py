from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.scaleout.cluster import Cluster, cluster
from tests.services import fresh_pg_schema, fresh_redis_prefix


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Relays (started by the test) on a fresh Postgres schema and a fresh Redis prefix."""
    async with (
        fresh_pg_schema() as schema,
        fresh_redis_prefix() as prefix,
        cluster(tmp_path, schema, prefix) as relays,
    ):
        yield relays
