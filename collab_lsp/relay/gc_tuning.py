"""Garbage collection settings for a relay process (``collab-relay serve``).

A relay allocates a few dicts and lists for every frame and delivery. With CPython's
defaults a young collection runs every 700 allocations and, every 100 of those, a full
collection walks every object in the process: all of pydantic's schemas, the modules,
every connection. At a few thousand messages a second those full collections stalled the
event loop for tens of milliseconds: in the durable-chat benchmark they set the ack p99
(docs/benchmarks.md). Freezing what exists once the relay has started keeps the start-up
objects out of every later collection, and a larger young generation collects less often.
"""

from __future__ import annotations

import gc

__all__ = ["tune_for_serving"]

# (young, middle, old): CPython's defaults are (700, 10, 10). Measured, not derived.
THRESHOLDS = (20_000, 20, 20)


def tune_for_serving() -> None:
    """Call once the relay has started, in the process that serves (not in a library user)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
