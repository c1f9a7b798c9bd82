"""/healthz and /metrics on the relay's port, read with a real HTTP client."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request

from tests.helpers import TIMEOUT, RelayHandle
from tests.relay.relay_process import RelayProcess, until_pong

K = 7


async def http_get(url: str) -> tuple[int, list[str], str]:
    """Status, every Content-Type header and body of a GET."""

    def get() -> tuple[int, list[str], str]:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                types = response.headers.get_all("Content-Type")
                return response.status, types, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get_all("Content-Type"), error.read().decode()

    return await asyncio.to_thread(get)


async def scrape(relay: RelayHandle | RelayProcess) -> dict[str, float]:
    """The metrics as {'name{labels}': value}."""
    status, _, body = await http_get(relay.http + "/metrics")
    assert status == 200
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert re.search(r"^# TYPE collab_session_messages_total counter$", body, re.M)
    return samples


async def test_healthz_says_ok(relay: RelayHandle) -> None:
    status, _, body = await http_get(relay.http + "/healthz")
    assert (status, body) == (200, "ok\n")


async def test_metrics_are_served_as_prometheus_text(relay: RelayHandle) -> None:
    status, content_types, body = await http_get(relay.http + "/metrics")
    assert status == 200
    assert content_types == ["text/plain; version=0.0.4; charset=utf-8"]
    assert "# TYPE collab_active_collaborations gauge" in body


async def test_unknown_paths_are_404(relay: RelayHandle) -> None:
    status, _, body = await http_get(relay.http + "/nope")
    assert status == 404
    assert "not found" in body


async def test_metrics_reflect_traffic(relay: RelayHandle) -> None:
    session_id = await relay.create_session()
    session = f'{{session="{session_id}"}}'
    alice = await relay.join(session_id, "alice", "host")
    bob = await relay.join(session_id, "bob", "editor")
    await alice.expect("user_joined")
    before = await scrape(relay)

    acks = [await alice.request({"type": "chat_message", "content": f"m{i}"}) for i in range(K)]
    for _ in range(K):
        await bob.expect("chat_message")
    after = await scrape(relay)

    messages = f"collab_session_messages_total{session}"
    assert after[messages] - before[messages] == K
    assert after[messages] == acks[-1]["seq"]  # every durable event of the session, joins too
    assert after[f"collab_session_participants{session}"] == 2
    assert after["collab_active_collaborations"] == 1
    assert after['collab_frames_received_total{type="chat_message"}'] == K
    assert after["collab_delivery_latency_seconds_count"] >= 2 * K
    assert after["collab_open_connections"] == 2
    # Each chat message was awaited before the next was sent: a commit each, at least.
    commits = after["collab_store_commits_total"] - before["collab_store_commits_total"]
    writes = after["collab_store_writes_total"] - before["collab_store_writes_total"]
    assert writes >= K and 1 <= commits <= writes
    # One relay, no Redis: nothing crosses a broker.
    assert after["collab_broker_published_total"] == after["collab_broker_failures_total"] == 0

    # A connection's duration is observed when it closes.
    await bob.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while (await scrape(relay))["collab_connection_duration_seconds_count"] < 1:
        assert loop.time() < deadline, "the closed connection was never observed"
        await until_pong(alice)
    final = await scrape(relay)
    assert final['collab_connection_duration_seconds_bucket{le="+Inf"}'] == 1
    assert final[f"collab_session_participants{session}"] == 1
