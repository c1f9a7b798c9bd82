"""Run a real collab-lsp relay for the relay benchmark (``bench/run.py`` starts it).

Starts ``collab_lsp.relay.server.Relay`` on 127.0.0.1, port 0, with a fresh SQLite file
(``synchronous=NORMAL``, the default; or ``--database-url``: a fresh schema in that
PostgreSQL database, dropped on exit), tunes the garbage collector as ``collab-relay serve``
does (``--default-gc`` to compare), creates ``--sessions`` sessions straight through its
store, optionally seeds ``--history`` chat messages into the first, prints one JSON line
(``port``, ``pid``, ``sessions``, ``secret``, where ``collab_lsp`` was imported from), and
serves until SIGTERM. ``--pythonpath DIR`` imports ``collab_lsp`` from DIR first (a scratch
copy with a candidate fix). ``--loop`` picks the event loop: ``auto`` (the default) runs
uvloop when it is installed, like `collab-relay serve`; ``asyncio`` or ``uvloop`` force one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--cursor-interval", type=float, default=None)
    parser.add_argument("--durable-rate", type=int, default=None)
    parser.add_argument("--pythonpath", default=None)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--default-gc", action="store_true", help="skip the GC tuning of serve")
    parser.add_argument("--commit-window", type=float, default=None)
    parser.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite")
    parser.add_argument("--compression", choices=["True", "False"], default=None)
    args = parser.parse_args()
    if args.loop == "auto":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            args.loop = "asyncio"
        else:
            args.loop = "uvloop"
    return args


async def main(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.pythonpath or str(REPO))
    import collab_lsp
    from collab_lsp.protocol.models import MessageType, ParticipantKind
    from collab_lsp.relay.config import RelayConfig
    from collab_lsp.relay.gc_tuning import tune_for_serving
    from collab_lsp.relay.server import Relay

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    folder = tempfile.mkdtemp(prefix="relay-bench-")
    settings: dict[str, object] = {"port": 0, "db": f"{folder}/relay.db", "secret": args.secret}
    if args.cursor_interval is not None:
        settings["cursor_interval_seconds"] = args.cursor_interval
    if args.durable_rate is not None:
        settings["durable_rate_per_minute"] = args.durable_rate
    if args.compression is not None:
        settings["compression"] = args.compression == "True"
    if args.commit_window is not None:
        settings["commit_window_seconds"] = args.commit_window
    if args.database_url is not None:
        settings["database_url"] = args.database_url
        settings["database_schema"] = f"bench_{os.getpid()}"
    config = RelayConfig(**settings)
    relay = Relay(config)
    await relay.start()
    if not args.default_gc:
        tune_for_serving()  # as `collab-relay serve` does
    store = relay.store
    sessions = []
    for i in range(args.sessions):
        session = await store.create_session(
            title=f"bench {i}", host_id="host", host_name="host", host_kind=ParticipantKind.HUMAN
        )
        sessions.append(session.id)
    seeded = time.perf_counter()
    if args.history:
        batch = 500
        for start in range(0, args.history, batch):
            await asyncio.gather(
                *(
                    store.add_message(
                        sessions[0],
                        "host",
                        f"h{n}",
                        {
                            "message_type": MessageType.CHAT,
                            "content": f"history message {n}: " + "lorem ipsum " * 6,
                            "mentions": [],
                            "parent_id": None,
                        },
                    )
                    for n in range(start, min(args.history, start + batch))
                )
            )
    ready = {
        "port": relay.port,
        "pid": os.getpid(),
        "sessions": sessions,
        "secret": args.secret,
        "collab_lsp": str(Path(collab_lsp.__file__).parent),
        "config": config.model_dump(exclude={"secret", "database_url"}),
        "seed_seconds": time.perf_counter() - seeded,
        "loop": args.loop,
    }
    print(json.dumps(ready), flush=True)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    await relay.stop()
    shutil.rmtree(folder, ignore_errors=True)  # ~30 MB of SQLite per durable point
    if args.database_url is not None:
        import asyncpg  # type: ignore[import-untyped]

        admin = await asyncpg.connect(args.database_url)
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{settings["database_schema"]}" CASCADE')
        finally:
            await admin.close()


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.loop == "uvloop":
        import uvloop

        uvloop.run(main(ARGS))
    else:
        asyncio.run(main(ARGS))
