"""Benchmark: editor to editor through real sidecars and the relay (issue #7, scenario 5).

Per session configuration (``--configs``, PARTICIPANTS/SIDECARS): a fresh relay
(``bench/relay_serve.py``, its own process pinned to core 0 with ``taskset``) and real
sidecars (``python -m collab_lsp.sidecar``), each driven over stdio by pytest-lsp's
``LanguageClient`` in this process (the *driver*) as an editor drives it. Every editor
joins one session, opens the same file of a git checkout and types: ``collab/cursor``
every 1/rate s (+-20% jitter), the caret one character further each time, each typist in
its own band of lines so that every update's position is unique. Participants beyond the
sidecars type through bare WebSocket clients (``10/2``: what one sidecar's machine sees in
a session of 10, without 10 sidecars sharing the benchmark machine's cores).

Measured, on one clock (the driver's):

- **editor → editor**: from the moment the driver wrote ``collab/cursor`` into sidecar A's
  stdin to the moment it has parsed a ``collab/remoteCursors`` from sidecar B carrying
  that position (JSON parsed, before pygls would convert it);
- **editor → socket** (sending half) and **socket → editor** (receiving half): the same
  through a bare WebSocket participant at one end (a passive *observer* is always there);
- **floor** (the reference): bare WebSocket clients (the ``websockets`` library the
  sidecar uses) in a second session of the same relay send the same ``cursor_update``
  frames at the same rate to each other, just before and after each typing phase;
- **comments**: ``collab.server.addComment`` at one editor (authors in turn, everyone
  typing) until every other editor has parsed a ``textDocument/publishDiagnostics``
  holding it; floor: the same ``add_comment`` frames between bare sockets;
- CPU of the relay, the sidecars and the driver over every phase, the driver's own
  event-loop lag, and the messages a second that each editor receives.

    .venv/bin/python bench/editor_latency.py --quick   # about 30 s
    .venv/bin/python bench/editor_latency.py           # 10/10 and 10/2, 10 and 20/s, ~3 min

Results are printed, written to the ``## Editor to editor`` section of docs/benchmarks.md
(``--no-write`` to skip) and plotted to docs/bench/editor_latency.png. ``--py-spy DIR``
samples sidecar 0 and the relay during each typing phase; ``--profile DIR`` runs sidecar
0 under cProfile. No assertion is made on any timing.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime
import gc
import json
import logging
import os
import platform
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from lsprotocol import types
from pygls.protocol import default_converter
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient, client_capabilities
from websockets.version import version as websockets_version

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from collab_lsp.protocol import limits  # noqa: E402
from collab_lsp.protocol.permissions import Role  # noqa: E402
from collab_lsp.relay.auth import Authenticator  # noqa: E402
from collab_lsp.sidecar.workspace_files import git_blob_id, git_head  # noqa: E402

SECTION = "## Editor to editor"
DOC = REPO / "docs" / "benchmarks.md"
PLOTS = REPO / "docs" / "bench"
PLOT_NAME = "editor_latency.png"
RELAY_CORE = "0"
FILE = "src/typing_here.py"
BAND = 200  # lines of the file each typist owns
STEP = 64  # characters typed on a line before moving to the next
FIRST_CHARACTER = 4
TARGET_MS = 30.0
SIDECAR_WINDOW = limits.CURSOR_INTERVAL_SECONDS  # the sidecar's own cursor coalescing (fixed)
PUBLISH = types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS
COMMENT_TEXT = re.compile(r"bench comment (\d+):")
HOT = frozenset(
    {
        "collab/remoteCursors",
        "collab/participants",
        "collab/threads",
        "collab/sessionState",
        "collab/chat",
        "collab/follow",
        PUBLISH,
    }
)
INLAY_REFRESH = types.WORKSPACE_INLAY_HINT_REFRESH
METHOD = re.compile(rb'"method":\s*"([^"]+)"')
COMMENT_BYTES = re.compile(rb"bench comment (\d+):")


# -- small helpers ------------------------------------------------------------------------


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pinned(core: str) -> list[str]:
    return ["taskset", "-c", core] if shutil.which("taskset") and os.cpu_count() != 1 else []


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"samples": 0, "p50": None, "p99": None, "max": None, "mean": None}
    ms = [v * 1000 for v in values]
    return {
        "samples": len(ms),
        "p50": pct(ms, 0.50),
        "p99": pct(ms, 0.99),
        "max": max(ms),
        "mean": statistics.fmean(ms),
    }


def position_of(sender: int, n: int) -> tuple[int, int]:
    """The unique (0-based line, character) of sender's n-th update."""
    return sender * BAND + (n // STEP) % BAND, FIRST_CHARACTER + n % STEP


def update_of(sender: int, line: int, character: int) -> int | None:
    offset = line - sender * BAND
    if not 0 <= offset < BAND or not FIRST_CHARACTER <= character < FIRST_CHARACTER + STEP:
        return None
    return offset * STEP + character - FIRST_CHARACTER


def comment_text(k: int) -> str:
    return f"bench comment {k}: is this right?"


def file_text(senders: int) -> str:
    """Every line is longer than FIRST_CHARACTER + STEP characters (ASCII)."""
    lines = []
    for i in range(max(senders, 1) * BAND):
        body = f"value_{i:05d} = compute(value_{max(i - 1, 0):05d}, scale={i % 7})"
        lines.append((body + "  # " + "x" * 80)[:90])
    return "\n".join(lines) + "\n"


# -- latency bookkeeping ----------------------------------------------------------------------


class Tracker:
    """Cursor updates sent and seen in one session; phases are windows of send time.

    Every member is an ``editor`` (a real sidecar behind an LSP client) or a ``socket`` (a
    bare WebSocket participant), so that each (sender kind, receiver kind) is its own row.
    """

    def __init__(self) -> None:
        self.kind: dict[str, str] = {}
        self.receivers: set[str] = set()
        self.sent: dict[str, list[tuple[int, float]]] = {}  # sender -> [(n, t)] in order
        self.sent_at: dict[str, dict[int, float]] = {}
        self.seen: dict[tuple[str, str], dict[int, float]] = {}  # (receiver, sender) -> n -> t
        self.last: dict[tuple[str, str], int] = {}

    def member(self, user: str, kind: str, *, receives: bool = True) -> None:
        self.kind[user] = kind
        if receives:
            self.receivers.add(user)

    def on_sent(self, sender: str, n: int, t: float) -> None:
        self.sent.setdefault(sender, []).append((n, t))
        self.sent_at.setdefault(sender, {})[n] = t

    def on_seen(self, receiver: str, sender: str, n: int, t: float) -> None:
        key = (receiver, sender)
        if n <= self.last.get(key, -1):
            return  # a position seen before, repeated because someone else moved
        self.last[key] = n
        self.seen.setdefault(key, {})[n] = t

    def summarize(
        self, senders: str, receivers: str, t0: float, t1: float, window: float
    ) -> dict[str, Any]:
        """Latency of updates sent in [t0, t1); loss with coalescing window ``window``."""
        latencies: list[float] = []
        coalesced = superseded = pair_updates = final_missing = 0
        for receiver in sorted(r for r in self.receivers if self.kind[r] == receivers):
            for sender, sent in self.sent.items():
                if sender == receiver or self.kind[sender] != senders:
                    continue
                seen = self.seen.get((receiver, sender), {})
                arrived = sorted(seen)
                in_window = [(n, t) for n, t in sent if t0 <= t < t1]
                for n, t in in_window:
                    pair_updates += 1
                    if n in seen:
                        latencies.append(seen[n] - t)
                        continue
                    later = bisect.bisect_right(arrived, n)
                    if later < len(arrived) and self.sent_at[sender][arrived[later]] - t <= window:
                        coalesced += 1
                    else:
                        superseded += 1
                if in_window and in_window[-1][0] not in seen:
                    final_missing += 1
        return {
            "latency_ms": summary_ms(latencies),
            "pair_updates": pair_updates,
            "coalesced": coalesced,
            "superseded": superseded,
            "final_missing": final_missing,
            "raw": latencies,
        }


# -- the relay process ----------------------------------------------------------------------


class RelayProcess:
    """``bench/relay_serve.py`` pinned to core 0: two sessions (sidecars, floor)."""

    def __init__(self, *, cursor_interval: float | None, durable_rate: int, pythonpath: str | None):
        self.secret = secrets.token_hex(24)
        cmd = [
            sys.executable,
            str(BENCH / "relay_serve.py"),
            "--sessions",
            "2",
            "--secret",
            self.secret,
            "--durable-rate",
            str(durable_rate),
        ]
        if cursor_interval is not None:
            cmd += ["--cursor-interval", str(cursor_interval)]
        if pythonpath:
            cmd += ["--pythonpath", pythonpath]
        self.proc = subprocess.Popen(
            pinned(RELAY_CORE) + cmd, stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the relay did not start")
        self.info: dict[str, Any] = json.loads(line)
        self.url = f"ws://127.0.0.1:{self.info['port']}"
        self.pid: int = self.info["pid"]
        self.sessions: list[str] = self.info["sessions"]
        self.auth = Authenticator(self.secret)

    def token(self, session: str, user: str, name: str) -> str:
        return self.auth.issue(sub=user, name=name, sid=session, role=Role.EDITOR)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- editors: a sidecar process and the LSP client that drives it ---------------------------


class _Skip:
    """What the structure hook returns for a message it has fully handled."""


SKIP = _Skip()


class Editor:
    """A real sidecar subprocess, driven over stdio as an editor drives it."""

    def __init__(self, run: Run, index: int, argv: list[str], env: dict[str, str]) -> None:
        self.run = run
        self.index = index
        self.user = f"editor-{index:02d}"
        self.name = f"Editor {index:02d}"
        self.argv = argv
        self.env = env
        self.uri = ""
        self.counts: dict[str, int] = {}
        self.client = LanguageClient(converter_factory=default_converter)
        for method in (types.WINDOW_LOG_MESSAGE, types.WINDOW_SHOW_MESSAGE, INLAY_REFRESH):
            self.client.feature(method)(lambda client, params: None)
        protocol = self.client.protocol
        structure, handle, send = (
            protocol.structure_message,
            protocol.handle_message,
            protocol._send_data,
        )

        # A message is timed when its JSON is parsed, before pygls would convert it (a
        # namedtuple class per object: the driver's cost, not the sidecar's). Those we time
        # or ignore are then dropped instead of converted and dispatched, and inlay hint
        # refreshes are answered at once, so the driver stays as light as it can.
        def hooked_structure(data: dict[str, Any]) -> Any:
            if "jsonrpc" not in data:
                return data
            method = data.get("method")
            if method is None:
                return structure(data)
            self.counts[method] = self.counts.get(method, 0) + 1
            if method in HOT:
                if method == "collab/remoteCursors":
                    self.run.on_remote_cursors(self, data["params"], time.perf_counter())
                return SKIP
            if method == INLAY_REFRESH and "id" in data:
                send({"jsonrpc": "2.0", "id": data["id"], "result": None})
                return SKIP
            return structure(data)

        def hooked_handle(message: Any) -> None:
            if message is not SKIP:
                handle(message)

        # The moment an addComment request is written into the sidecar's stdin: the
        # driver's own delay before it (its task waiting for the event loop, pygls
        # converting the request) is not the sidecar's.
        def hooked_send(data: Any) -> None:
            if getattr(data, "method", None) == types.WORKSPACE_EXECUTE_COMMAND:
                arguments = getattr(data.params, "arguments", None) or [{}]
                match = COMMENT_TEXT.match(str(arguments[0].get("text", "")))
                comment = self.run.comments.get(int(match.group(1))) if match else None
                if comment is not None:
                    comment.written = time.perf_counter()
            send(data)

        protocol.structure_message = hooked_structure  # type: ignore[method-assign]
        protocol.handle_message = hooked_handle  # type: ignore[method-assign]
        protocol._send_data = hooked_send  # type: ignore[method-assign]
        self._send = send

    @property
    def pid(self) -> int:
        process = self.client._server
        assert process is not None
        return process.pid

    def _filter(self, body: bytes) -> bytes:
        """A message body as read from the sidecar's stdout, before pygls parses it.

        The driver plays every editor at once, so it must not spend its time parsing what
        it does not measure: each comment makes every sidecar send the whole file's
        diagnostics and threads (hundreds of KiB in all). Diagnostics are timed here and
        searched for comment numbers as bytes; they and the notifications nobody reads
        reach pygls as an empty notification (still counted).
        """
        # "method" leads pygls's own messages and the sidecar's collab/* notifications, and
        # follows "params" in lsprotocol's (publishDiagnostics): look at both ends.
        method = METHOD.search(body, 0, 120) or METHOD.search(body, max(len(body) - 120, 0))
        if method is None:
            return body  # a response
        name = method.group(1)
        if name == PUBLISH.encode():
            now = time.perf_counter()
            for number in set(COMMENT_BYTES.findall(body)):
                comment = self.run.comments.get(int(number))
                if comment is not None and self.user not in comment.seen:
                    comment.seen[self.user] = now
        elif name == b"collab/remoteCursors" or name.decode() not in HOT:
            return body
        return b'{"jsonrpc": "2.0", "method": "%s", "params": null}' % name

    async def start(self, root: Path, inlay_refresh: bool) -> None:
        await self.client.start_io(*self.argv, env=self.env, cwd=str(root))
        process = self.client._server
        assert process is not None and process.stdout is not None
        read_body = process.stdout.readexactly  # what pygls's reader loop calls for a body

        async def readexactly(n: int) -> bytes:
            return self._filter(await read_body(n))

        process.stdout.readexactly = readexactly  # type: ignore[method-assign]
        capabilities = client_capabilities("visual-studio-code")
        if inlay_refresh:
            # vscode-languageclient >= 8 declares it (pytest-lsp's capture is VS Code 1.65).
            assert capabilities.workspace is not None
            capabilities.workspace.inlay_hint = types.InlayHintWorkspaceClientCapabilities(
                refresh_support=True
            )
        await self.client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities,
                root_uri=from_fs_path(str(root)),
                initialization_options={"name": self.name},
            )
        )

    async def command(self, name: str, **arguments: Any) -> Any:
        return await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=f"collab.server.{name}", arguments=[arguments])
        )

    def open(self, uri: str, text: str) -> None:
        self.uri = uri
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )

    async def comment(self, k: int, line: int) -> None:
        """Run collab.server.addComment on the open file; return once it is answered."""
        await self.command("addComment", uri=self.uri, line=line, text=comment_text(k))

    async def cursor(self, line: int, character: int) -> float:
        """Send collab/cursor; the time it was written to the sidecar's stdin."""
        params = {"uri": self.uri, "position": {"line": line, "character": character}}
        sent = time.perf_counter()
        self._send({"jsonrpc": "2.0", "method": "collab/cursor", "params": params})
        return sent

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.shutdown_session(), 10)
        with contextlib.suppress(Exception):
            await self.client.stop()  # type: ignore[no-untyped-call]


class Socket:
    """A bare relay participant over ``websockets``, the library the sidecar uses."""

    def __init__(self, run: Run, tracker: Tracker, user: str, index: int | None) -> None:
        self.run = run
        self.tracker = tracker
        self.user = user
        self.index = index
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None

    async def connect(self, url: str, session: str, token: str) -> None:
        self.ws = await websockets.connect(f"{url}/ws/session/{session}?token={token}")
        first = json.loads(await self.ws.recv())
        if first.get("type") != "connected":
            raise RuntimeError(f"{self.user} could not join: {first}")
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                frame = json.loads(raw)
                now = time.perf_counter()
                kind = frame.get("type")
                if kind == "code_comment":
                    self.run.on_comment_event(self, frame["comment"]["content"], now)
                elif kind == "ack" and str(frame.get("ref", "")).startswith("c"):
                    comment = self.run.floor_comments.get(int(frame["ref"][1:]))
                    if comment is not None:
                        comment.acked = now
                if kind != "presence_update":
                    continue
                cursor = frame["presence"].get("cursor")
                sender = self.run.index_of.get(frame["user_id"])
                if cursor is None or sender is None or cursor.get("file") != FILE:
                    continue
                n = update_of(sender, cursor["line"] - 1, cursor["column"] - 1)
                if n is not None:
                    self.tracker.on_seen(self.user, frame["user_id"], n, now)

    async def comment(self, k: int, line: int) -> None:
        """The add_comment frame a sidecar sends for the same comment (ack read by _read)."""
        data = {
            "file": FILE,
            "line": line + 1,
            "content": comment_text(k),
            "code_snippet": self.run.lines[line],
            "commit": self.run.commit,
            "blob": self.run.blob,
        }
        await self.ws.send(json.dumps({"type": "add_comment", "id": f"c{k}", "data": data}))

    async def cursor(self, line: int, character: int) -> float:
        frame = {
            "type": "cursor_update",
            "data": {"file": FILE, "line": line + 1, "column": character + 1},
        }
        text = json.dumps(frame)
        sent = time.perf_counter()
        await self.ws.send(text)
        return sent

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


# -- one configuration: a relay, a session of N participants of which K are sidecars ---------


@dataclass
class Comment:
    author: str
    sent: float
    acked: float | None = None
    relayed: float | None = None  # the first bare socket to receive the relay's code_comment
    written: float | None = None  # the request written into the author's stdin (sidecars)
    seen: dict[str, float] = field(default_factory=dict)


class Run:
    def __init__(self, opts: argparse.Namespace, participants: int, sidecars: int) -> None:
        self.opts = opts
        self.participants = participants
        self.sidecars = sidecars
        self.editors: list[Editor] = []
        self.typists: list[Editor | Socket] = []  # everyone who types in the session
        self.index_of: dict[str, int] = {}
        self.tracker = Tracker()  # the session under test
        self.floor = Tracker()  # the floor's own session
        self.floor_clients: list[Socket] = []
        self.comments: dict[int, Comment] = {}
        self.floor_comments: dict[int, Comment] = {}
        self.lines: list[str] = []
        self.commit = ""
        self.blob = ""
        self.lag: list[tuple[float, float]] = []
        self.next_n: dict[str, int] = {}  # per typist, over the whole run: positions never repeat

    @property
    def label(self) -> str:
        if self.sidecars == self.participants:
            return f"{self.sidecars} sidecars"
        return f"{self.sidecars} sidecars + {self.participants - self.sidecars} sockets"

    def take(self, user: str) -> int:
        n = self.next_n.get(user, 0)
        self.next_n[user] = n + 1
        return n

    # -- what editors receive --

    def on_remote_cursors(self, editor: Editor, params: dict[str, Any], now: float) -> None:
        if params.get("file") != FILE:
            return
        for cursor in params["cursors"]:
            sender = self.index_of.get(cursor["userId"])
            if sender is None:
                continue
            position = cursor["position"]
            n = update_of(sender, position["line"], position["character"])
            if n is not None:
                self.tracker.on_seen(editor.user, cursor["userId"], n, now)

    def on_comment_event(self, socket: Socket, content: str, now: float) -> None:
        """A relay's code_comment at a bare socket: the floor's arrival, or "relayed"."""
        match = COMMENT_TEXT.search(content)
        if match is None:
            return
        if socket.tracker is self.floor:
            floor = self.floor_comments.get(int(match.group(1)))
            if floor is not None and socket.user not in floor.seen:
                floor.seen[socket.user] = now
            return
        comment = self.comments.get(int(match.group(1)))
        if comment is not None and comment.relayed is None:
            comment.relayed = now

    async def watch_lag(self) -> None:
        """How late this process's event loop runs a 5 ms timer."""
        period = 0.005
        while True:
            before = time.perf_counter()
            await asyncio.sleep(period)
            now = time.perf_counter()
            self.lag.append((now, now - before - period))


def _schedule(rng: random.Random, rate: float, start: float, stop: float) -> Iterator[float]:
    t = start + rng.uniform(0, 1 / rate)
    while t < stop:
        yield t
        t += rng.uniform(0.8, 1.2) / rate


async def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def type_along(
    run: Run,
    tracker: Tracker,
    typists: list[Editor] | list[Socket] | list[Editor | Socket],
    rate: float,
    start: float,
    stop: float,
    seed: int,
) -> None:
    """Every typist moves its caret one character every ~1/rate s until ``stop``."""
    rng = random.Random(seed)

    async def one(typist: Editor | Socket, local: random.Random) -> None:
        assert typist.index is not None
        for at in _schedule(local, rate, start, stop):
            await _sleep_until(at)
            n = run.take(typist.user)
            sent = await typist.cursor(*position_of(typist.index, n))
            tracker.on_sent(typist.user, n, sent)

    await asyncio.gather(*(one(t, random.Random(rng.randrange(1 << 30))) for t in typists))


class Usage:
    """CPU of the relay, every sidecar and this process over a phase, and the loop lag."""

    def __init__(self, run: Run, relay_pid: int) -> None:
        self.run = run
        self.relay_pid = relay_pid

    def start(self) -> Usage:
        self.t0 = time.perf_counter()
        self.relay0 = cpu_seconds(self.relay_pid)
        self.driver0 = time.process_time()
        self.sidecars0 = [cpu_seconds(e.pid) for e in self.run.editors]
        self.load_before = loadavg()
        return self

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        sidecars = [
            100 * (cpu_seconds(e.pid) - before) / wall
            for e, before in zip(self.run.editors, self.sidecars0, strict=True)
        ]
        lags = [lag for at, lag in self.run.lag if at >= self.t0]
        return {
            "seconds": wall,
            "relay_cpu_pct": 100 * (cpu_seconds(self.relay_pid) - self.relay0) / wall,
            "driver_cpu_pct": 100 * (time.process_time() - self.driver0) / wall,
            "sidecars_cpu_pct": sum(sidecars),
            "sidecar_cpu_pct_max": max(sidecars, default=0.0),
            "loop_lag_ms_p99": (pct(lags, 0.99) or 0.0) * 1000,
            "loop_lag_ms_max": max(lags, default=0.0) * 1000,
            "load_before": self.load_before,
            "load_after": loadavg(),
        }


async def _typing_window(
    run: Run, relay: RelayProcess, measured: float, typing: Callable[[float, float], Any]
) -> tuple[float, float, dict[str, Any]]:
    """Warm up, measure for ``measured`` s while ``typing(start, stop)`` runs, drain."""
    o = run.opts
    start = time.perf_counter()
    t0, t1 = start + o.warmup, start + o.warmup + measured
    usage = Usage(run, relay.pid)

    async def measure() -> dict[str, Any]:
        await _sleep_until(t0)
        usage.start()
        await _sleep_until(t1)
        return usage.stop()

    cpu, _ = await asyncio.gather(measure(), typing(start, t1))
    await asyncio.sleep(o.drain)
    return t0, t1, cpu


COMMENT_PATH = "comment → diagnostic"
COMMENT_FLOOR = "floor: add_comment → code_comment (own session)"
PATHS = {
    ("editor", "editor"): "editor → editor",
    ("editor", "socket"): "editor → socket (sending half)",
    ("socket", "editor"): "socket → editor (receiving half)",
    ("socket", "socket"): "socket → socket (relay only, same session)",
}


async def phase_floor(run: Run, relay: RelayProcess, rate: float) -> dict[str, Any]:
    seed = run.opts.seed + int(rate)
    t0, t1, cpu = await _typing_window(
        run,
        relay,
        run.opts.floor_seconds,
        lambda start, stop: type_along(run, run.floor, run.floor_clients, rate, start, stop, seed),
    )
    interval = relay.info["config"]["cursor_interval_seconds"]
    result = run.floor.summarize("socket", "socket", t0, t1, interval)
    return {"path": "floor: socket → socket (own session)", "rate": rate, **result, **cpu}


async def phase_typing(run: Run, relay: RelayProcess, rate: float) -> list[dict[str, Any]]:
    seed = run.opts.seed + 1000 + int(rate)
    counts0 = [dict(e.counts) for e in run.editors]
    started = time.perf_counter()
    spies = spy(run, relay, rate)
    t0, t1, cpu = await _typing_window(
        run,
        relay,
        run.opts.seconds,
        lambda start, stop: type_along(run, run.tracker, run.typists, rate, start, stop, seed),
    )
    for process in spies:
        process.wait()
    volume = notification_rates(run, counts0, time.perf_counter() - started)
    interval = relay.info["config"]["cursor_interval_seconds"]
    rows = []
    for (senders, receivers), path in PATHS.items():
        window = interval + (SIDECAR_WINDOW if senders == "editor" else 0.0)
        result = run.tracker.summarize(senders, receivers, t0, t1, window)
        if result["pair_updates"]:
            rows.append({"path": path, "rate": rate, **result, **cpu, "volume": volume})
    return rows


def spy(run: Run, relay: RelayProcess, rate: float) -> list[subprocess.Popen[bytes]]:
    """With ``--py-spy DIR``: sample sidecar 0 and the relay over the measured window."""
    folder = run.opts.py_spy
    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    executable = shutil.which("py-spy", path=search)
    if folder is None or not run.editors or executable is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{run.participants}-{run.sidecars}-{rate:.0f}"
    processes = []
    for name, pid in (("sidecar-0", run.editors[0].pid), ("relay", relay.pid)):
        command = [executable, "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
        command += ["--duration", str(int(run.opts.warmup + run.opts.seconds))]
        command += ["--format", "raw", "--output", str(folder / f"{name}-{tag}.txt")]
        processes.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return processes


def notification_rates(run: Run, before: list[dict[str, int]], seconds: float) -> dict[str, float]:
    """Messages a second that one editor received from its sidecar (mean over editors)."""
    totals: dict[str, float] = {}
    for editor, counts in zip(run.editors, before, strict=True):
        for method, count in editor.counts.items():
            delta = count - counts.get(method, 0)
            if delta:
                totals[method] = totals.get(method, 0) + delta
    n = max(len(run.editors), 1)
    return {m: c / n / max(seconds, 1e-9) for m, c in sorted(totals.items())}


async def phase_comments(run: Run, relay: RelayProcess, floor: bool) -> dict[str, Any]:
    """Comments from the authors in turn while everyone keeps typing at the first rate.

    Sidecars: ``collab.server.addComment`` → ``publishDiagnostics`` at every other editor.
    Floor: bare sockets send the same ``add_comment`` frames → ``code_comment`` at the others.
    """
    o = run.opts
    rate = o.rates[0]
    count = o.comments
    comments = run.floor_comments if floor else run.comments
    authors: list[Editor] | list[Socket] = run.floor_clients if floor else run.editors
    receivers = [a.user for a in authors]
    typists = run.floor_clients if floor else run.typists
    tracker = run.floor if floor else run.tracker
    start = time.perf_counter()
    first = start + o.warmup
    stop_typing = first + count / o.comment_rate + o.drain
    usage = Usage(run, relay.pid)
    tasks: list[asyncio.Task[None]] = []

    async def comment(k: int, author: Editor | Socket) -> None:
        with contextlib.suppress(Exception):
            await author.comment(k, (k * 37) % len(run.lines))
            if isinstance(author, Editor):
                comments[k].acked = time.perf_counter()

    typing = asyncio.get_running_loop().create_task(
        type_along(run, tracker, typists, rate, start, stop_typing, o.seed + 7 + floor)
    )
    await _sleep_until(first)
    usage.start()
    for k in range(count):
        await _sleep_until(first + k / o.comment_rate)
        author = authors[k % len(authors)]
        comments[k] = Comment(author.user, time.perf_counter())
        tasks.append(asyncio.get_running_loop().create_task(comment(k, author)))
    expected = len(receivers) - 1
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if all(len(c.seen) >= expected for c in comments.values()):
            break
        await asyncio.sleep(0.05)
    cpu = usage.stop()
    await typing
    await asyncio.gather(*tasks)
    latencies, by_index, missing = [], [], 0
    for k, c in sorted(comments.items()):
        for user in receivers:
            if user == c.author:
                continue
            if user in c.seen:
                latencies.append(c.seen[user] - c.sent)
                by_index.append((k, c.seen[user] - c.sent))
            else:
                missing += 1
    acks = [c.acked - c.sent for c in comments.values() if c.acked is not None]
    relayed = [c.relayed - c.sent for c in comments.values() if c.relayed is not None]
    # From the moment the request was written into the author's stdin (sidecars only).
    written = [c for c in comments.values() if c.written is not None]
    from_written = [
        seen - c.written for c in written for user, seen in c.seen.items() if user != c.author
    ]
    return {
        "path": COMMENT_FLOOR if floor else COMMENT_PATH,
        "rate": o.comment_rate,
        "typing_rate": rate,
        "comments": count,
        "latency_ms": summary_ms(latencies),
        "ack_ms": summary_ms(acks),
        "relayed_ms": summary_ms(relayed),
        "written_ms": summary_ms([c.written - c.sent for c in written]),
        "latency_from_written_ms": summary_ms(from_written),
        "relayed_from_written_ms": summary_ms(
            [c.relayed - c.written for c in written if c.relayed is not None]
        ),
        "acked": len(acks),
        "pair_updates": count * expected,
        "final_missing": missing,
        "by_index": by_index,
        "raw": latencies,
        **cpu,
    }


@contextlib.contextmanager
def workspace(participants: int) -> Iterator[tuple[Path, str]]:
    """A git checkout with the typed-in file (addComment records the commit)."""
    folder = Path(tempfile.mkdtemp(prefix="collab-editor-bench-"))
    try:
        root = folder / "project"
        (root / "src").mkdir(parents=True)
        text = file_text(participants)
        (root / FILE).write_text(text, encoding="utf-8")
        who = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
        git = ["git", "-C", str(root), *who]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "bench"], check=True)
        yield root, text
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sidecar_env(opts: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "COLLAB_LOG_LEVEL": "WARNING"}
    for name in ("COLLAB_RELAY_URL", "COLLAB_TOKEN", "COLLAB_SESSION", "COLLAB_INVITE"):
        env.pop(name, None)
    if opts.sidecar_pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(
            [opts.sidecar_pythonpath, env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
    return env


def profiled(argv: list[str], folder: Path | None, index: int) -> list[str]:
    """Sidecar 0 under cProfile (written when it exits) with ``--profile DIR``."""
    if folder is None or index != 0:
        return argv
    folder.mkdir(parents=True, exist_ok=True)
    out = str((folder / "sidecar-0.prof").resolve())
    return [argv[0], "-m", "cProfile", "-o", out, *argv[1:]]


async def run_config(
    opts: argparse.Namespace, participants: int, sidecars: int, comments: bool
) -> dict[str, Any]:
    """One relay; a session of ``participants``, ``sidecars`` of them real sidecars."""
    run = Run(opts, participants, sidecars)
    out: dict[str, Any] = {
        "label": run.label,
        "participants": participants,
        "sidecars": sidecars,
        "phases": [],
    }
    relay = RelayProcess(
        cursor_interval=opts.cursor_interval,
        durable_rate=opts.durable_rate,
        pythonpath=opts.relay_pythonpath,
    )
    out["relay_config"] = relay.info["config"]
    out["collab_lsp"] = relay.info["collab_lsp"]
    lag = asyncio.get_running_loop().create_task(run.watch_lag())
    sockets: list[Socket] = []
    env = sidecar_env(opts)
    argv = [sys.executable, "-m", "collab_lsp.sidecar"]
    try:
        with workspace(participants) as (root, text):
            session, floor_session = relay.sessions
            uri = from_fs_path(str(root / FILE))
            assert uri is not None
            run.lines = text.splitlines()
            run.commit = await git_head(root) or ""
            run.blob = git_blob_id(text)
            started = time.perf_counter()
            run.editors = [
                Editor(run, i, profiled(argv, opts.profile, i), env) for i in range(sidecars)
            ]
            await asyncio.gather(*(e.start(root, opts.inlay_refresh) for e in run.editors))
            for editor in run.editors:
                run.index_of[editor.user] = editor.index
                run.tracker.member(editor.user, "editor")

            async def join(editor: Editor) -> None:
                token = relay.token(session, editor.user, editor.name)
                await editor.command("join", relayUrl=relay.url, token=token)
                editor.open(uri, text)

            await asyncio.gather(*(join(e) for e in run.editors))
            run.typists = list(run.editors)
            for i in range(sidecars, participants):  # the rest type through bare sockets
                typist = Socket(run, run.tracker, f"socket-{i:02d}", i)
                run.index_of[typist.user] = i
                run.tracker.member(typist.user, "socket")
                await typist.connect(relay.url, session, relay.token(session, typist.user, "S"))
                sockets.append(typist)
                run.typists.append(typist)
            observer = Socket(run, run.tracker, "observer", None)
            run.tracker.member("observer", "socket")
            await observer.connect(relay.url, session, relay.token(session, "observer", "O"))
            sockets.append(observer)
            for i in range(participants):
                client = Socket(run, run.floor, f"floor-{i:02d}", i)
                run.index_of[client.user] = i
                run.floor.member(client.user, "socket")
                token = relay.token(floor_session, client.user, client.user)
                await client.connect(relay.url, floor_session, token)
                run.floor_clients.append(client)
            out["startup_seconds"] = time.perf_counter() - started
            print(
                f"[{run.label}] started and joined in {out['startup_seconds']:.1f} s; relay "
                f"pid {relay.pid} from {out['collab_lsp']}",
                flush=True,
            )
            gc.collect()
            gc.freeze()
            for rate in opts.rates if comments else opts.rates[:1]:
                # Interleaved: floor, session under test, floor, so drift hits both alike.
                floor_a = await phase_floor(run, relay, rate)
                typing = await phase_typing(run, relay, rate)
                floor_b = await phase_floor(run, relay, rate)
                floor = merge_floor(floor_a, floor_b)
                out["phases"] += [*typing, floor]
                for row in (*typing, floor):
                    print(f"  [{run.label}] " + short(row), flush=True)
            if comments and opts.comments and sidecars >= 2:
                for floor_phase in (False, True):
                    result = await phase_comments(run, relay, floor_phase)
                    out["phases"].append(result)
                    print(f"  [{run.label}] " + short(result), flush=True)
            out["notifications"] = {e.user: e.counts for e in run.editors}
    finally:
        lag.cancel()
        for client in [*sockets, *run.floor_clients]:
            await client.close()
        await asyncio.gather(*(e.stop() for e in run.editors))
        relay.stop()
    return out


def merge_floor(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    raw = a["raw"] + b["raw"]
    merged = {**a, "raw": raw, "latency_ms": summary_ms(raw)}
    for key in ("pair_updates", "coalesced", "superseded", "final_missing"):
        merged[key] = a[key] + b[key]
    for key in ("relay_cpu_pct", "driver_cpu_pct", "sidecars_cpu_pct", "sidecar_cpu_pct_max"):
        merged[key] = (a[key] + b[key]) / 2
    merged["loop_lag_ms_p99"] = max(a["loop_lag_ms_p99"], b["loop_lag_ms_p99"])
    merged["loop_lag_ms_max"] = max(a["loop_lag_ms_max"], b["loop_lag_ms_max"])
    merged["load_after"] = b["load_after"]
    merged["seconds"] = a["seconds"] + b["seconds"]
    return merged


async def run_all(opts: argparse.Namespace) -> dict[str, Any]:
    logging.basicConfig(level=logging.ERROR)
    started = time.perf_counter()
    res: dict[str, Any] = {"load_before": loadavg(), "configs": []}
    for number, (participants, sidecars) in enumerate(opts.configs):
        res["configs"].append(await run_config(opts, participants, sidecars, number == 0))
    res["load_after"] = loadavg()
    res["seconds"] = time.perf_counter() - started
    return res


# -- reporting ---------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def short(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    return (
        f"{r['path']:42s} {r['rate']:>4}/s: n={lat['samples']} p50 {fmt(lat['p50'])} "
        f"p99 {fmt(lat['p99'])} max {fmt(lat['max'])} ms, superseded "
        f"{r.get('superseded', 0)}, missing {r['final_missing']}, relay "
        f"{r['relay_cpu_pct']:.0f}% sidecars {r['sidecars_cpu_pct']:.0f}% driver "
        f"{r['driver_cpu_pct']:.0f}% lag p99 {r['loop_lag_ms_p99']:.1f} ms"
    )


def machine() -> str:
    cpu = platform.machine()
    found = re.findall(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    if found:
        cpu = found[0]
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"websockets {websockets_version}, Linux {platform.release()}"
    )


def _row(phases: list[dict[str, Any]], path: str, rate: float) -> dict[str, Any] | None:
    return next((p for p in phases if p["path"] == path and p["rate"] == rate), None)


def _p(row: dict[str, Any] | None, key: str) -> float | None:
    return None if row is None else row["latency_ms"][key]


def report(res: dict[str, Any], opts: argparse.Namespace) -> str:
    configs = res["configs"]
    main_config = configs[0]
    config = main_config["relay_config"]
    interval_ms = config["cursor_interval_seconds"] * 1000
    flags = " --tiny" if opts.tiny else " --quick" if opts.quick else ""
    n = main_config["participants"]
    rate0 = opts.rates[0]
    out = [SECTION, ""]
    e2e = _row(main_config["phases"], PATHS["editor", "editor"], rate0)
    floor = _row(main_config["phases"], "floor: socket → socket (own session)", rate0)
    comment = _row(main_config["phases"], COMMENT_PATH, opts.comment_rate)
    comment_floor = _row(main_config["phases"], COMMENT_FLOOR, opts.comment_rate)
    if e2e is not None:
        p99 = _p(e2e, "p99")
        met = p99 is not None and p99 <= TARGET_MS
        line = (
            f"> **Target {'met' if met else 'missed'}** (p99 ≤ {TARGET_MS:.0f} ms from one "
            f"sidecar to another through the relay at {n} participants): editor to editor "
            f"with {main_config['label']} typing at {rate0:.0f} cursor updates/s each, p50 "
            f"{fmt(_p(e2e, 'p50'))} ms, p99 {fmt(p99)} ms; the relay alone (floor) p50 "
            f"{fmt(_p(floor, 'p50'))} ms, p99 {fmt(_p(floor, 'p99'))} ms."
        )
        for rate in opts.rates[1:]:
            fast = _row(main_config["phases"], PATHS["editor", "editor"], rate)
            fast_floor = _row(main_config["phases"], "floor: socket → socket (own session)", rate)
            if fast is not None:
                line += (
                    f" At {rate:.0f} updates/s: p50 {fmt(_p(fast, 'p50'))} ms, p99 "
                    f"{fmt(_p(fast, 'p99'))} ms, against a floor of p50 "
                    f"{fmt(_p(fast_floor, 'p50'))} ms, p99 {fmt(_p(fast_floor, 'p99'))} ms: "
                    f"updates closer together than the relay's {interval_ms:.0f} ms cursor "
                    "interval wait for it, by design."
                )
        for other in configs[1:]:
            row = _row(other["phases"], PATHS["editor", "editor"], rate0)
            if row is not None:
                line += (
                    f" With {other['label']} (what one sidecar's machine sees in a session of "
                    f"{other['participants']}, without {other['participants']} sidecars "
                    f"sharing 2 cores): p50 {fmt(_p(row, 'p50'))} ms, p99 "
                    f"{fmt(_p(row, 'p99'))} ms."
                )
        if comment is not None:
            comment_p99 = _p(comment, "p99")
            comment_met = comment_p99 is not None and comment_p99 <= TARGET_MS
            line += (
                f" **Comments: target {'met' if comment_met else 'missed'}**: a comment "
                f"reaches the other editors' diagnostics in p50 {fmt(_p(comment, 'p50'))} ms, "
                f"p99 {fmt(comment_p99)} ms (relay only: p50 "
                f"{fmt(_p(comment_floor, 'p50'))} ms, p99 {fmt(_p(comment_floor, 'p99'))} ms)."
            )
        out += [line, ""]
    out.append(
        f"Generated by `.venv/bin/python bench/editor_latency.py{flags}` on "
        f"{datetime.date.today()} ({res['seconds']:.0f} s). **Numbers are from one noisy "
        f"2-core machine** ({machine()}; load average {res['load_before']} before the run, "
        f"{res['load_after']} after, per phase in the tables) on which the relay, every "
        "sidecar and the driver run together (in real use each sidecar has its own machine), "
        "while other engineers' tests may run too: compare rows of the same run rather than "
        "absolute values."
    )
    out.append("")
    out.append(
        f"**Setup.** Per session configuration, a fresh relay (`bench/relay_serve.py`, fresh "
        f"SQLite file, pinned to core {RELAY_CORE} with `taskset`) from "
        f"`{main_config['collab_lsp']}`, and real sidecars (`python -m collab_lsp.sidecar`, "
        "unpinned), each driven over stdio by pytest-lsp's `LanguageClient` in the benchmark "
        "process (the *driver*) with VS Code's client capabilities (utf-16"
        + (
            ", and `workspace.inlayHint.refreshSupport` as vscode-languageclient ≥ 8 declares "
            "it; the driver answers each refresh at once and does not pull inlay hints, like "
            "a plugin that draws cursors itself"
            if opts.inlay_refresh
            else ", no inlay hint refresh support"
        )
        + f"). Each sidecar joins the session, opens the same {n * BAND}-line file of a git "
        "checkout and types: `collab/cursor` every 1/rate s (±20% jitter), the caret one "
        "character further each time, each typist in its own band of lines, so every "
        "update's position is unique. Session configurations: "
        + "; ".join(
            f"**{c['label']}** ({c['participants']} participants"
            + (
                f"; {c['participants'] - c['sidecars']} of them type through bare WebSocket "
                "clients, so that the measured sidecars see a full session's traffic without "
                f"{c['participants']} sidecars competing for the 2 cores"
                if c["sidecars"] < c["participants"]
                else ""
            )
            + ")"
            for c in configs
        )
        + ". Relay configuration: `cursor_interval_seconds` "
        f"{config['cursor_interval_seconds']} (default {limits.CURSOR_INTERVAL_SECONDS}), "
        f"`presence_interval_seconds` {config['presence_interval_seconds']} (default), "
        f"`durable_rate_per_minute` {config['durable_rate_per_minute']:,} (default "
        f"{limits.DURABLE_RATE_PER_MINUTE}; lifted so the comment phase is never "
        "rate-limited); everything else default."
    )
    out.append("")
    out.append(
        "**What is timed**, on one clock (the driver's): from just before the driver writes "
        "`collab/cursor` into sidecar A's stdin to the moment it has parsed a "
        "`collab/remoteCursors` from sidecar B carrying that exact position (JSON parsed, "
        "before pygls would convert it). The session also holds a passive bare WebSocket "
        "participant (the *observer*, one more recipient of the relay's fan-out) and, in "
        "mixed configurations, the socket typists; with them each hop gets its own row:"
    )
    out.append("")
    out += [
        f"- **{PATHS['editor', 'editor']}**: the scenario, every (sender, receiver) pair of "
        "sidecars;",
        f"- **{PATHS['editor', 'socket']}**: sidecar A's updates as bare sockets receive them "
        "(editor A → stdin → sidecar A → relay → socket);",
        f"- **{PATHS['socket', 'editor']}**: socket typists' updates as editors receive them "
        "(relay → sidecar B → stdout → editor B);",
        f"- **{PATHS['socket', 'socket']}** and **floor** (the reference): bare clients only, "
        "in the session under test, and in a second session of the same relay measured just "
        f"before and after each typing phase ({n} clients, same rate). The floor is what the "
        "relay costs with no sidecar and no LSP at either end. `bench/relay_reference.py` "
        "cannot speak the relay protocol that the sidecars need, so the relay itself is the "
        "floor here (its overhead over a bare broadcast server is in *Relay throughput*).",
    ]
    out.append("")
    out.append(
        "Cursor updates are *latest wins* by design (the sidecar and the relay each keep only "
        "the newest one waiting), so an update that never arrived is not an error if a newer "
        "one did: it is *coalesced* if that newer one was sent at most W after it (W = the "
        f"relay's {interval_ms:.0f} ms, plus the sidecar's own 50 ms for updates sent by a "
        "sidecar), *superseded* if later than that (something stalled for longer than the "
        "coalescing windows). A real loss is a *final missing*: a (receiver, sender) pair "
        "where the sender's last position of the phase never arrived (for comments: a comment "
        "some editor never showed). CPU is % of one core over the measured "
        "window (sidecars: the sum over all of them, and the busiest one); *driver lag*: how "
        "late the driver's event loop ran a 5 ms timer (p99), a bound on how much of a "
        "latency is the driver's own delay."
    )
    out.append("")
    out.append("**Cursor: `collab/cursor` at one editor → `collab/remoteCursors` at another**")
    out.append("")
    out.append(
        "| session | path | updates/s each | samples | p50 ms | p99 ms | max ms | coalesced | "
        "superseded / pair-updates | final missing | relay CPU | sidecars CPU (max one) | "
        "driver CPU | driver lag p99 ms | load before → after |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for c in configs:
        for p in c["phases"]:
            if p["path"] in (COMMENT_PATH, COMMENT_FLOOR):
                continue
            lat = p["latency_ms"]
            out.append(
                f"| {c['label']} | {p['path']} | {p['rate']:.0f} | {lat['samples']:,} | "
                f"{fmt(lat['p50'])} | {fmt(lat['p99'])} | {fmt(lat['max'])} | "
                f"{p['coalesced']:,} | {p['superseded']:,} / {p['pair_updates']:,} | "
                f"{p['final_missing']} | {p['relay_cpu_pct']:.0f}% | "
                f"{p['sidecars_cpu_pct']:.0f}% ({p['sidecar_cpu_pct_max']:.0f}%) | "
                f"{p['driver_cpu_pct']:.0f}% | {p['loop_lag_ms_p99']:.1f} | "
                f"{p['load_before']} → {p['load_after']} |"
            )
    out.append("")
    breakdown = []
    for c in configs:
        for rate in opts.rates:
            rows = [_row(c["phases"], path, rate) for path in PATHS.values()]
            floor_row = _row(c["phases"], "floor: socket → socket (own session)", rate)
            if rows[0] is None or floor_row is None:
                continue
            cells = [
                f"{fmt(_p(r, 'p50'))} / {fmt(_p(r, 'p99'))}"
                for r in (floor_row, rows[3], rows[1], rows[2], rows[0])
            ]
            if rows[2] is None and rows[1] is not None:
                difference = (_p(rows[0], "p50") or 0.0) - (_p(rows[1], "p50") or 0.0)
                cells[3] = f"≈ {difference:.1f} / — (difference of the medians)"
            breakdown.append(f"| {c['label']} | {rate:.0f} | " + " | ".join(cells) + " |")
    if breakdown:
        out.append("**Where the time goes** (p50 / p99, ms; — where the session has no such pair)")
        out.append("")
        out.append(
            "| session | updates/s each | floor (relay only) | socket → socket, same session "
            "| editor → socket (sending half) | socket → editor (receiving half) | editor → "
            "editor |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        out += breakdown
        out.append("")
    volume = next(
        (p["volume"] for p in main_config["phases"] if "volume" in p and p["rate"] == rate0),
        None,
    )
    if volume:
        out.append(
            f"**What one editor receives from its sidecar** while {main_config['label']} type "
            f"at {rate0:.0f} updates/s (messages a second, mean over editors): "
            + ", ".join(f"`{m}` {v:.0f}" for m, v in volume.items())
            + ". The sidecar does not coalesce what it sends to the editor: each "
            "`presence_update` from the relay becomes a `collab/remoteCursors` for the open "
            "document (all the cursors in it) and a `collab/participants` (everyone), whether "
            "or not they changed; only `workspace/inlayHint/refresh` (a request, when the "
            "client declares refresh support) is throttled, to one per 50 ms. "
            "Outgoing, it sends the relay at most one cursor frame per 50 ms (leading edge: a "
            "cursor after a quiet 50 ms goes at once; not configurable), and the relay "
            f"coalesces again per user at `cursor_interval_seconds` ({interval_ms:.0f} ms, "
            "also leading edge). At 10 updates/s (~100 ms apart) neither window delays "
            "anything; at 20/s the ±20% jitter puts some updates closer than 50 ms, and those "
            "wait for the window or are replaced (*coalesced*)."
        )
        out.append("")
    if comment is not None:
        out.append(
            "**Comment: `collab.server.addComment` at one editor → "
            "`textDocument/publishDiagnostics` holding it at every other editor**"
        )
        out.append("")
        out.append(
            f"{comment['comments']} comments, {comment['rate']:.0f} a second, authors in turn, "
            f"on lines spread over the open file, while {main_config['label']} keep typing at "
            f"{comment['typing_rate']:.0f} updates/s. Each new comment re-publishes all of the "
            "file's threads (the k-th comment's publish carries k diagnostics, plus a "
            "`collab/threads` with every thread in full); each sidecar keeps every thread's "
            "rendering as JSON text and renders only the threads that changed. The author's "
            "sidecar records the commit and the file's blob id with the comment "
            "(`commit`/`blob`): the commit comes from a cache that is read again when git's "
            "refs change (`git rev-parse HEAD` no longer runs for every comment), the blob id "
            "is computed once per text of the document. Latency is counted from the moment "
            "the driver decided to comment (its own delay before writing the command into "
            "the author's stdin has its own row). *Relayed*: the "
            "relay's `code_comment` event reaching the first bare socket of the session (the "
            "author's sidecar and the relay, without the receiving sidecars). *Ack*: the "
            "command's answer at the author, once the relay has stored the comment (by then "
            "the author's sidecar has published the file's threads for the relay's event "
            "and again for the ack). The driver does not parse the diagnostics it times: it "
            "finds the comment numbers in the message bytes, so that playing every editor at "
            "once costs it little. The "
            "**floor** (reference): the floor session's bare sockets send the same "
            "`add_comment` frames (same fields, same rate, authors in turn, everyone typing) "
            "and time the `code_comment` event at every other socket, and the relay's `ack`."
        )
        out.append("")
        out.append(
            "| what | samples | p50 ms | p99 ms | max ms | final missing | relay CPU | sidecars "
            "CPU (max one) | driver CPU | driver lag p99 ms | load before → after |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")

        def usage_cells(row: dict[str, Any]) -> str:
            return (
                f"{row['relay_cpu_pct']:.0f}% | {row['sidecars_cpu_pct']:.0f}% "
                f"({row['sidecar_cpu_pct_max']:.0f}%) | {row['driver_cpu_pct']:.0f}% | "
                f"{row['loop_lag_ms_p99']:.1f} | {row['load_before']} → {row['load_after']}"
            )

        def row_text(what: str, s: dict[str, Any], missing: int, of: int, cells: str) -> str:
            return (
                f"| {what} | {s['samples']:,} | {fmt(s['p50'])} | {fmt(s['p99'])} | "
                f"{fmt(s['max'])} | {missing} / {of} | {cells} |"
            )

        blank = " | | | | "  # five empty cells
        n_comments = comment["comments"]
        out.append(
            row_text(
                "sidecars: comment → diagnostic at each other editor",
                comment["latency_ms"],
                comment["final_missing"],
                comment["pair_updates"],
                usage_cells(comment),
            )
        )
        relayed = comment["relayed_ms"]
        out.append(
            row_text(
                "sidecars: command sent → relayed (`code_comment` at a bare socket)",
                relayed,
                n_comments - relayed["samples"],
                n_comments,
                blank,
            )
        )
        out.append(
            row_text(
                "sidecars: command sent → acknowledged (author)",
                comment["ack_ms"],
                n_comments - comment["acked"],
                n_comments,
                blank,
            )
        )
        written = comment.get("written_ms")
        if written is not None and written["samples"]:
            out.append(
                row_text(
                    "driver's own delay: comment decided → command written to the author's "
                    "stdin (included above)",
                    written,
                    n_comments - written["samples"],
                    n_comments,
                    blank,
                )
            )
        if comment_floor is not None:
            out.append(
                row_text(
                    "floor: `add_comment` → `code_comment` at each other socket",
                    comment_floor["latency_ms"],
                    comment_floor["final_missing"],
                    comment_floor["pair_updates"],
                    usage_cells(comment_floor),
                )
            )
            out.append(
                row_text(
                    "floor: `add_comment` → `ack` (author)",
                    comment_floor["ack_ms"],
                    comment_floor["comments"] - comment_floor["acked"],
                    comment_floor["comments"],
                    blank,
                )
            )
        out.append("")
    for name in res.get("plots") or []:
        out.append(f"![{name}](bench/{name})")
    return "\n".join(out).rstrip() + "\n"


def plots(res: dict[str, Any], folder: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return []
    folder.mkdir(parents=True, exist_ok=True)
    phases = res["configs"][0]["phases"]
    comment = next((p for p in phases if p["path"] == COMMENT_PATH), None)
    comment_floor = next((p for p in phases if p["path"] == COMMENT_FLOOR), None)
    fig, axes = plt.subplots(1, 2, figsize=(12, 6), squeeze=False)
    left, right = axes[0]
    for c in res["configs"]:
        for p in c["phases"]:
            if p["path"] in (COMMENT_PATH, COMMENT_FLOOR) or not p["raw"]:
                continue
            if p["path"].startswith("socket → socket"):
                continue  # the floor shows the same thing
            values = sorted(v * 1000 for v in p["raw"])
            ys = [(i + 1) / len(values) for i in range(len(values))]
            style = "--" if p["path"].startswith("floor") else "-"
            left.plot(values, ys, style, label=f"{c['label']}: {p['path']}, {p['rate']:.0f}/s")
    left.axvline(TARGET_MS, color="grey", ls=":", lw=0.8)
    left.set(xlabel="latency (ms, log scale)", ylabel="fraction of updates", xscale="log")
    left.set_title("Cursor update latency (CDF); dotted: the 30 ms target", fontsize=10)
    if comment is not None and comment["by_index"]:
        for row, label, colour in (
            (comment, "sidecars: addComment → diagnostic", "tab:blue"),
            (comment_floor, "floor: add_comment → code_comment", "tab:grey"),
        ):
            if row is None:
                continue
            xs = [k for k, _ in row["by_index"]]
            ys2 = [v * 1000 for _, v in row["by_index"]]
            right.scatter(xs, ys2, s=4, alpha=0.5, color=colour, label=label)
        right.set(xlabel="comment number (= threads already in the file)", ylabel="ms")
        right.set_ylim(bottom=0)
        right.set_title("Comment latency at each other participant", fontsize=10)
        right.legend(fontsize=7, loc="upper left", markerscale=3)
    else:
        right.set_axis_off()
    fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(folder / PLOT_NAME, dpi=90)
    plt.close(fig)
    return [PLOT_NAME]


def write_section(text: str, doc: Path) -> None:
    """Replace only this benchmark's section; the file is re-read just before writing."""
    current = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def _config(text: str) -> tuple[int, int]:
    participants, _, sidecars = text.partition("/")
    n = int(participants)
    k = int(sidecars) if sidecars else n
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"{text}: want PARTICIPANTS/SIDECARS, 1 <= SIDECARS <= N")
    return n, k


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one rate, short phases (< 30 s)")
    parser.add_argument("--tiny", action="store_true", help="3 sidecars, seconds (smoke test)")
    parser.add_argument(
        "--configs",
        type=_config,
        nargs="+",
        default=None,
        help="sessions as PARTICIPANTS/SIDECARS (default: 10/10 10/2; --quick: 10/10)",
    )
    parser.add_argument(
        "--rates", type=float, nargs="+", default=None, help="cursor updates/s per typist"
    )
    parser.add_argument("--seconds", type=float, default=None, help="measured typing per rate")
    parser.add_argument("--comments", type=int, default=None, help="comments (default 200)")
    parser.add_argument("--comment-rate", type=float, default=5.0, help="comments a second")
    parser.add_argument(
        "--cursor-interval",
        type=float,
        default=None,
        help="relay cursor_interval_seconds (default: the relay's own, 0.05)",
    )
    parser.add_argument("--durable-rate", type=int, default=10_000_000)
    parser.add_argument(
        "--no-inlay-refresh",
        dest="inlay_refresh",
        action="store_false",
        help="do not declare workspace.inlayHint.refreshSupport",
    )
    parser.add_argument("--seed", type=int, default=20240607)
    parser.add_argument("--sidecar-pythonpath", default=None, help="run sidecars from DIR")
    parser.add_argument("--relay-pythonpath", default=None, help="run the relay from DIR")
    parser.add_argument(
        "--profile", type=Path, default=None, help="run sidecar 0 under cProfile, into DIR"
    )
    parser.add_argument(
        "--py-spy", type=Path, default=None, help="sample sidecar 0 and the relay, into DIR"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--plots", type=Path, default=PLOTS)
    parser.add_argument("--json", type=Path, default=None, help="also save raw results here")
    opts = parser.parse_args(argv)
    if opts.tiny:
        opts.quick = True
    mode = "tiny" if opts.tiny else "quick" if opts.quick else "full"
    configs, rates, seconds, comments, opts.warmup, opts.floor_seconds, opts.drain = {
        "tiny": ([(3, 3)], [10.0], 2.0, 5, 1.0, 1.0, 0.5),
        "quick": ([(10, 10)], [10.0], 4.0, 16, 0.5, 1.0, 0.5),
        "full": ([(10, 10), (10, 2)], [10.0, 20.0], 15.0, 200, 1.0, 4.0, 1.0),
    }[mode]
    opts.configs = opts.configs or configs
    opts.rates = opts.rates or rates
    opts.seconds = opts.seconds or seconds
    opts.comments = comments if opts.comments is None else opts.comments
    for name in ("sidecar_pythonpath", "relay_pythonpath"):
        if getattr(opts, name):
            setattr(opts, name, str(Path(getattr(opts, name)).resolve()))
    res = asyncio.run(run_all(opts))
    if not opts.no_write:
        res["plots"] = plots(res, opts.plots)
    text = report(res, opts)
    res["markdown"] = text
    print()
    print(text)
    if opts.json:
        slim = {
            **res,
            "configs": [
                {**c, "phases": [{k: v for k, v in p.items() if k != "raw"} for p in c["phases"]]}
                for c in res["configs"]
            ],
        }
        opts.json.write_text(json.dumps(slim, indent=1), encoding="utf-8")
    if not opts.no_write:
        write_section(text, opts.doc)
        print(f"wrote the {SECTION!r} section of {opts.doc}")
    return res


if __name__ == "__main__":
    main()
