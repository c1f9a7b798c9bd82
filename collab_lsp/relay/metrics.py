"""Prometheus text exposition of the seed's metrics, without a client library.

Tracked (seed, "Metrics & Monitoring"): active collaborations, messages per
session, participants per session, connection duration, message delivery latency;
plus connections, frames by type, errors by code, dropped ephemeral frames, the
store's commits and the writes in them (how well group commit batches), and what crossed
the broker between relays.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable

from collab_lsp.relay.broker import BrokerStats

__all__ = ["Histogram", "Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_DURATION_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def render(self, name: str) -> Iterable[str]:
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            yield f'{name}_bucket{{le="{bound}"}} {cumulative}'
        yield f'{name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{name}_sum {self.total}"
        yield f"{name}_count {self.count}"


class Metrics:
    def __init__(self) -> None:
        self.messages_per_session: Counter[str] = Counter()
        self.frames_received: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.connections_total = 0
        self.ephemeral_dropped = 0
        self.slow_consumers_closed = 0
        self.connection_duration = Histogram(_DURATION_BUCKETS)
        self.delivery_latency = Histogram(_LATENCY_BUCKETS)

    def render(
        self,
        *,
        open_connections: int,
        participants_per_session: dict[str, int],
        healthy: Callable[[], bool],
        store_commits: int = 0,
        store_writes: int = 0,
        broker: BrokerStats | None = None,
    ) -> str:
        broker = broker or BrokerStats()
        active = sum(1 for count in participants_per_session.values() if count > 0)
        lines = [
            "# HELP collab_active_collaborations Sessions with at least one connected participant.",
            "# TYPE collab_active_collaborations gauge",
            f"collab_active_collaborations {active}",
            "# HELP collab_session_participants Connected participants per session.",
            "# TYPE collab_session_participants gauge",
            *(
                f'collab_session_participants{{session="{sid}"}} {count}'
                for sid, count in sorted(participants_per_session.items())
            ),
            "# HELP collab_session_messages_total Durable events committed per session.",
            "# TYPE collab_session_messages_total counter",
            *(
                f'collab_session_messages_total{{session="{sid}"}} {count}'
                for sid, count in sorted(self.messages_per_session.items())
            ),
            "# HELP collab_open_connections WebSocket connections open now.",
            "# TYPE collab_open_connections gauge",
            f"collab_open_connections {open_connections}",
            "# HELP collab_connections_total WebSocket connections accepted.",
            "# TYPE collab_connections_total counter",
            f"collab_connections_total {self.connections_total}",
            "# HELP collab_frames_received_total Client frames received, by type.",
            "# TYPE collab_frames_received_total counter",
            *(
                f'collab_frames_received_total{{type="{kind}"}} {count}'
                for kind, count in sorted(self.frames_received.items())
            ),
            "# HELP collab_errors_total Error frames sent, by error code.",
            "# TYPE collab_errors_total counter",
            *(
                f'collab_errors_total{{code="{code}"}} {count}'
                for code, count in sorted(self.errors.items())
            ),
            "# HELP collab_ephemeral_dropped_total Presence frames replaced before being sent.",
            "# TYPE collab_ephemeral_dropped_total counter",
            f"collab_ephemeral_dropped_total {self.ephemeral_dropped}",
            "# HELP collab_slow_consumers_closed_total Connections closed for a durable backlog.",
            "# TYPE collab_slow_consumers_closed_total counter",
            f"collab_slow_consumers_closed_total {self.slow_consumers_closed}",
            "# HELP collab_connection_duration_seconds How long connections stayed open.",
            "# TYPE collab_connection_duration_seconds histogram",
            *self.connection_duration.render("collab_connection_duration_seconds"),
            "# HELP collab_delivery_latency_seconds From receiving a frame to writing it out.",
            "# TYPE collab_delivery_latency_seconds histogram",
            *self.delivery_latency.render("collab_delivery_latency_seconds"),
            "# HELP collab_store_commits_total Transactions the store committed (SQLite: group "
            "commits, see commit_window_seconds).",
            "# TYPE collab_store_commits_total counter",
            f"collab_store_commits_total {store_commits}",
            "# HELP collab_store_writes_total Writes in those commits (per commit: batch size).",
            "# TYPE collab_store_writes_total counter",
            f"collab_store_writes_total {store_writes}",
            "# HELP collab_broker_published_total Operations written to Redis (events, presence, "
            "who is where). 0 on a single relay.",
            "# TYPE collab_broker_published_total counter",
            f"collab_broker_published_total {broker.published}",
            "# HELP collab_broker_dropped_total Operations lost while Redis was unreachable "
            "(events are read back from the store).",
            "# TYPE collab_broker_dropped_total counter",
            f"collab_broker_dropped_total {broker.dropped}",
            "# HELP collab_broker_received_total Other relays' messages received, by kind.",
            "# TYPE collab_broker_received_total counter",
            *(
                f'collab_broker_received_total{{kind="{kind}"}} {count}'
                for kind, count in sorted(broker.received.items())
            ),
            "# HELP collab_broker_failures_total Failed reads, writes or renewals against Redis.",
            "# TYPE collab_broker_failures_total counter",
            f"collab_broker_failures_total {broker.failures}",
            "# HELP collab_up 1 when the store answers.",
            "# TYPE collab_up gauge",
            f"collab_up {1 if healthy() else 0}",
        ]
        return "\n".join(lines) + "\n"
