"""Load generator for the relay benchmark (``bench/run.py`` starts it; not meant to be run alone).

It speaks WebSocket itself on raw asyncio transports -- a handshake, then unmasked frames
in, frames out masked with an all-zero key (which RFC 6455 allows and leaves the payload
as is), on uvloop when it is installed -- so that one core can read far more frames a
second than a ``websockets`` client could, and the generator is not what saturates first
(on asyncio's loop it needed 85-99% of its core for 50 x 10 cursors at 20/s; on uvloop
57-71%). Its own CPU use is measured and
reported next to the server's.

    python bench/loadgen.py SPEC.json    # prints one JSON object with the results

Modes (``spec["mode"]``): ``fanout`` (cursor updates), ``durable`` (chat with acks),
``idle`` (connect and hold), ``join`` (time to ``connected`` in a session with history).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import resource
import sys
import time
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

PRESENCE = re.compile(rb'"user_id": ?"([^"]+)".*?"file": ?"t/(\d+)\.py", ?"line": ?(\d+)')
ACK = re.compile(rb'"type": ?"ack", ?"ref": ?"([^"]+)"')
TICKS = os.sysconf("SC_CLK_TCK")
SPEC: dict[str, Any] = {}


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def database_cpu_seconds() -> float:
    """CPU of every PostgreSQL server process (backends, WAL writer...): the relay's database."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        if "(postgres)" in text[:64]:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def machine_busy_seconds() -> float:
    """CPU time every process on the machine used (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICKS  # less idle and iowait


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def encode(text: str) -> bytes:
    """A masked client text frame; the mask key is zero, so the payload is sent as is."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


class WS(asyncio.Protocol):
    """One client connection: the handshake, then every text frame goes to ``on_frame``.

    With ``compress``, it offers permessage-deflate (RFC 7692) and inflates what the server
    compressed (one inflater per connection: context takeover); it sends uncompressed.
    """

    def __init__(self, path: str, host: str, on_frame: Any, compress: bool = False) -> None:
        self.path, self.host, self.on_frame = path, host, on_frame
        self.compress = compress
        self.inflater: Any = None
        self.buf = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        offer = (
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            if self.compress
            else ""
        )
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{offer}\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(f"closed before connected: {exc}"))

    def send(self, text: str) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(encode(text))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                line = bytes(buf[: buf.find(b"\r\n")])
                if not self.connected.done():
                    self.connected.set_exception(ConnectionError(line.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            head = bytes(buf[:end]).lower()
            if self.compress:
                if b"permessage-deflate" not in head:
                    raise ConnectionError("the server did not accept permessage-deflate")
                self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            del buf[: end + 4]
            self.open = True
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            if size < start + length:
                break
            payload = bytes(buf[start : start + length])
            pos = start + length
            opcode = b0 & 0x0F
            if b0 & 0x40 and self.inflater is not None:  # RSV1: a compressed message
                payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
            if opcode == 1:
                if not self.connected.done():
                    if b'"connected"' in payload[:40]:
                        self.connected.set_result(now / 1e9)
                    elif b'"error"' in payload[:40]:
                        self.connected.set_exception(ConnectionError(payload[:300].decode()))
                self.on_frame(payload, now)
            elif opcode == 9 and self.transport is not None:  # ping -> pong
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
            elif opcode == 8:
                self.closed = True
                if self.transport is not None:
                    self.transport.close()
        if pos:
            del buf[:pos]


class Target:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.kind = spec["kind"]
        self.port = spec["port"]
        self.secret = spec.get("secret")
        self.compress = bool(spec.get("compression"))
        self.auth: Any = None
        if self.kind == "relay":
            sys.path.insert(0, str(REPO))
            from collab_lsp.protocol.permissions import Role
            from collab_lsp.relay.auth import Authenticator

            self.auth = Authenticator(self.secret)
            self.role = Role.EDITOR

    def path(self, session_id: str, user: str) -> str:
        if self.kind == "relay":
            token = self.auth.issue(sub=user, name=user, sid=session_id, role=self.role)
            return f"/ws/session/{session_id}?token={token}"
        return f"/ws/session/{session_id}?user={user}"

    async def connect(self, session_id: str, user: str, on_frame: Any) -> tuple[WS, float]:
        loop = asyncio.get_running_loop()
        path = self.path(session_id, user)
        started = time.monotonic()
        address = f"127.0.0.1:{self.port}"
        _, proto = await loop.create_connection(
            lambda: WS(path, address, on_frame, self.compress), "127.0.0.1", self.port
        )
        await asyncio.wait_for(proto.connected, 60)
        return proto, time.monotonic() - started


async def connect_all(
    target: Target, members: list[tuple[str, str]], handlers: list[Any], parallel: int = 64
) -> tuple[list[WS | None], list[float], int]:
    """Connect every (session, user), ``parallel`` at a time; failures are counted."""
    conns: list[WS | None] = [None] * len(members)
    times: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> None:
        nonlocal failures
        async with gate:
            try:
                conns[index], took = await target.connect(*members[index], handlers[index])
                times.append(took)
            except (OSError, ConnectionError, TimeoutError) as error:
                failures += 1
                if failures <= 3:
                    print(f"connect failed: {error}", file=sys.stderr)

    await asyncio.gather(*(one(i) for i in range(len(members))))
    return conns, times, failures


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


class Window:
    """CPU of the server and of this process, and wall time, over the measured window."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.s0 = proc_cpu_seconds(self.pid)
        self.l0 = own_cpu_seconds()
        self.m0 = machine_busy_seconds()
        self.d0 = database_cpu_seconds()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        server = proc_cpu_seconds(self.pid) - self.s0
        own = own_cpu_seconds() - self.l0
        machine = machine_busy_seconds() - self.m0
        database = database_cpu_seconds() - self.d0
        return {
            "seconds": wall,
            "server_cpu_pct": 100 * server / wall,
            "loadgen_cpu_pct": 100 * own / wall,
            # PostgreSQL's processes (only busy when the relay uses it), % of one core.
            "database_cpu_pct": 100 * database / wall,
            # Everything else running meanwhile (other people's tests...), % of one core.
            "others_cpu_pct": max(0.0, 100 * (machine - server - own - database) / wall),
            "server_rss_mib": proc_rss_kib(self.pid) / 1024,
        }


# -- cursor fan-out ---------------------------------------------------------------------------


async def fanout(spec: dict[str, Any], target: Target) -> dict[str, Any]:
    sessions: list[str] = spec["sessions"]
    per = spec["participants"]
    rate = spec["rate"]
    warmup, duration, drain = spec["warmup"], spec["duration"], spec["drain"]
    coalesce_ns = int(spec["coalesce_seconds"] * 1e9)
    users = [(sid, f"p{s}x{i}") for s, sid in enumerate(sessions) for i in range(per)]
    n = len(users)
    # received[r][sender] = list of seqs, in arrival order
    received: list[dict[bytes, list[int]]] = [{} for _ in range(n)]
    latencies: list[int] = []
    counter = {"window": 0, "all": 0}
    bounds = [0, 0]  # measured window in monotonic ns (receipt time)

    def handler(r: int) -> Any:
        mine = received[r]

        def on_frame(payload: bytes, now: int) -> None:
            if b"presence_update" not in payload:
                return
            m = PRESENCE.search(payload)
            if m is None:
                return
            sent = int(m.group(2))
            mine.setdefault(m.group(1), []).append(int(m.group(3)))
            counter["all"] += 1
            if bounds[0] <= now <= bounds[1]:
                counter["window"] += 1
                latencies.append(now - sent)

        return on_frame

    conns, join_times, failures = await connect_all(target, users, [handler(r) for r in range(n)])
    if failures:
        raise SystemExit(f"{failures} of {n} connections failed")
    await asyncio.sleep(0.5)  # let join announcements settle
    # Send schedule: every user sends every 1/rate s, phases spread evenly at random.
    interval = 1e9 / rate
    rng = random.Random(1)
    phases = sorted((rng.random() * interval, i) for i in range(n))
    sends: list[list[int]] = [[] for _ in range(n)]  # send time (ns) of seq k at index k-1
    loop_start = time.monotonic_ns()
    bounds[0] = loop_start + int(warmup * 1e9)
    bounds[1] = bounds[0] + int(duration * 1e9)
    stop_at = bounds[1]
    window = Window(spec["server_pid"])
    measuring = False
    late_ns = 0
    round_start = loop_start
    k = 0
    while True:
        now = time.monotonic_ns()
        if not measuring and now >= bounds[0]:
            window.start()
            measuring = True
        if now >= stop_at:
            break
        while round_start + phases[k][0] <= now:
            i = phases[k][1]
            seq = len(sends[i]) + 1
            t = time.monotonic_ns()
            late_ns = max(late_ns, t - int(round_start + phases[k][0]))
            sends[i].append(t)
            conns[i].send(  # type: ignore[union-attr]
                '{"type":"cursor_update","data":{"file":"t/%d.py","line":%d,"column":1}}' % (t, seq)  # noqa: UP031 (fast)
            )
            k += 1
            if k == n:
                k = 0
                round_start += interval
        await asyncio.sleep(0.001)
    stats = window.stop()
    await asyncio.sleep(drain)
    # Losses, per (sender, receiver) pair in the same session, for updates sent in the window.
    sent_in_window = lost = coalesced = final_missing = 0
    for r in range(n):
        session = users[r][0]
        for s in range(n):
            if s == r or users[s][0] != session:
                continue
            got = received[r].get(users[s][1].encode(), [])
            have = set(got)
            times = sends[s]
            last = len(times)
            if last and last not in have:
                final_missing += 1
            next_seen = None  # the next seq (> current) that arrived
            for seq in range(last, 0, -1):
                if seq in have:
                    next_seen = seq
                    continue
                t = times[seq - 1]
                if not bounds[0] <= t <= bounds[1]:
                    continue
                if next_seen is not None and times[next_seen - 1] - t <= coalesce_ns:
                    coalesced += 1
                else:
                    lost += 1
            sent_in_window += sum(1 for t in times if bounds[0] <= t <= bounds[1])
    for c in conns:
        if c is not None and c.transport is not None:
            c.transport.close()
    receivers = per - 1
    offered = sum(1 for ts in sends for t in ts if bounds[0] <= t <= bounds[1]) / duration
    ms = [x / 1e6 for x in latencies]
    return {
        **stats,
        "connections": n,
        "join_seconds_max": max(join_times),
        "updates_sent_per_s": offered,
        "offered_deliveries_per_s": offered * receivers,
        "delivered_per_s": counter["window"] / stats["seconds"],
        "latency_ms": {
            "p50": pct(ms, 0.50),
            "p99": pct(ms, 0.99),
            "max": max(ms) if ms else None,
            "samples": len(ms),
        },
        "pair_updates_in_window": sent_in_window,
        "lost": lost,
        "coalesced": coalesced,
        "final_position_missing": final_missing,
        "pairs": n * receivers,
        "sender_max_late_ms": late_ns / 1e6,
    }


# -- durable chat -------------------------------------------------------------------------------


async def durable(spec: dict[str, Any], target: Target) -> dict[str, Any]:
    sessions: list[str] = spec["sessions"]
    per = spec["participants"]
    rate = spec.get("rate")  # per sender, open loop; None: closed loop, one outstanding
    warmup, duration = spec["warmup"], spec["duration"]
    users = [(sid, f"c{s}x{i}") for s, sid in enumerate(sessions) for i in range(per)]
    n = len(users)
    pending: list[dict[str, int]] = [{} for _ in range(n)]
    lat: list[int] = []
    state = {"acked": 0, "errors": 0, "broadcast": 0, "window_acked": 0}
    bounds = [1 << 62, 1 << 62]
    wake: list[asyncio.Event] = [asyncio.Event() for _ in range(n)]

    def handler(r: int) -> Any:
        mine = pending[r]

        def on_frame(payload: bytes, now: int) -> None:
            if payload.startswith(b'{"type":"chat_message"') or b'"chat_message"' in payload[:30]:
                state["broadcast"] += 1
                return
            m = ACK.search(payload, 0, 120)
            if m is not None:
                sent = mine.pop(m.group(1).decode(), None)
                if sent is not None:
                    state["acked"] += 1
                    # Every message sent in the window counts, however late its ack
                    # (up to the drain): cutting off at the window's end would drop the
                    # slowest acks from the latencies.
                    if bounds[0] <= sent <= bounds[1]:
                        state["window_acked"] += 1
                        lat.append(now - sent)
                wake[r].set()
            elif b'"error"' in payload[:30]:
                state["errors"] += 1
                if state["errors"] <= 3:
                    print(payload[:300].decode(), file=sys.stderr)
                wake[r].set()

        return on_frame

    conns, _, failures = await connect_all(target, users, [handler(r) for r in range(n)])
    if failures:
        raise SystemExit(f"{failures} of {n} connections failed")
    await asyncio.sleep(0.5)
    start = time.monotonic_ns()
    bounds[0] = start + int(warmup * 1e9)
    bounds[1] = bounds[0] + int(duration * 1e9)
    window = Window(spec["server_pid"])
    sent = [0]

    def send(i: int) -> None:
        seq = sent[0] = sent[0] + 1
        ref = f"r{i}-{seq}"
        pending[i][ref] = time.monotonic_ns()
        conns[i].send(  # type: ignore[union-attr]
            '{"type":"chat_message","id":"%s","content":"benchmark message %d"}' % (ref, seq)  # noqa: UP031
        )

    async def closed_loop(i: int) -> None:
        while time.monotonic_ns() < bounds[1]:
            wake[i].clear()
            send(i)
            await wake[i].wait()

    async def open_loop() -> None:
        interval = 1e9 / rate
        rng = random.Random(2)
        phases = sorted((rng.random() * interval, i) for i in range(n))
        round_start, k = start, 0
        while time.monotonic_ns() < bounds[1]:
            now = time.monotonic_ns()
            while round_start + phases[k][0] <= now:
                send(phases[k][1])
                k += 1
                if k == n:
                    k, round_start = 0, round_start + interval
            await asyncio.sleep(0.001)

    async def measure() -> dict[str, float]:
        await asyncio.sleep(max(0.0, (bounds[0] - time.monotonic_ns()) / 1e9))
        window.start()
        await asyncio.sleep(max(0.0, (bounds[1] - time.monotonic_ns()) / 1e9))
        return window.stop()

    if rate is None:
        results = await asyncio.gather(measure(), *(closed_loop(i) for i in range(n)))
    else:
        results = await asyncio.gather(measure(), open_loop())
    stats = results[0]
    await asyncio.sleep(spec.get("drain", 1.0))
    outstanding = sum(len(p) for p in pending)
    for c in conns:
        if c is not None and c.transport is not None:
            c.transport.close()
    ms = [x / 1e6 for x in lat]
    return {
        **stats,
        "senders": n,
        "offered_per_s": None if rate is None else rate * n,
        "acked_per_s": state["window_acked"] / duration,
        "ack_ms": {"p50": pct(ms, 0.5), "p99": pct(ms, 0.99), "max": max(ms) if ms else None},
        "errors": state["errors"],
        "unacked_after_drain": outstanding,
        "broadcast_frames": state["broadcast"],
    }


# -- idle capacity and join time ---------------------------------------------------------------


async def idle(spec: dict[str, Any], target: Target) -> dict[str, Any]:
    sessions: list[str] = spec["sessions"]
    per = spec["participants"]
    users = [(sid, f"i{s}x{i}") for s, sid in enumerate(sessions) for i in range(per)]
    users = users[: spec["connections"]]
    pid = spec["server_pid"]
    rss0 = proc_rss_kib(pid)
    cpu0 = proc_cpu_seconds(pid)
    started = time.monotonic()
    conns, times, failures = await connect_all(
        target, users, [lambda p, t: None] * len(users), parallel=spec.get("parallel", 100)
    )
    took = time.monotonic() - started
    await asyncio.sleep(spec.get("settle", 2.0))
    rss1 = proc_rss_kib(pid)
    alive = sum(1 for c in conns if c is not None and not c.closed)
    await asyncio.sleep(spec.get("hold", 1.0))
    still = sum(1 for c in conns if c is not None and not c.closed)
    cpu1 = proc_cpu_seconds(pid)
    for c in conns:
        if c is not None and c.transport is not None:
            c.transport.close()
    return {
        "requested": len(users),
        "connected": len(users) - failures,
        "alive_after_hold": min(alive, still),
        "failures": failures,
        "connect_seconds": took,
        "join_ms_p50": 1000 * (pct(times, 0.5) or 0),
        "join_ms_p99": 1000 * (pct(times, 0.99) or 0),
        "server_rss_before_mib": rss0 / 1024,
        "server_rss_after_mib": rss1 / 1024,
        "kib_per_connection": (rss1 - rss0) / max(1, len(users) - failures),
        "server_cpu_seconds": cpu1 - cpu0,
        "loadgen_cpu_seconds": own_cpu_seconds(),
    }


async def join(spec: dict[str, Any], target: Target) -> dict[str, Any]:
    sid = spec["sessions"][0]
    times, sizes = [], []
    for i in range(spec["joins"]):
        size = [0]

        def on_frame(payload: bytes, now: int, size: list[int] = size) -> None:
            if not size[0]:
                size[0] = len(payload)

        conn, took = await target.connect(sid, f"j{i}", on_frame)
        times.append(took)
        sizes.append(size[0])
        assert conn.transport is not None
        conn.transport.close()
        await asyncio.sleep(0.02)
    ms = [t * 1000 for t in times]
    return {
        "joins": len(ms),
        "history": spec.get("history", 0),
        "join_ms_p50": pct(ms, 0.5),
        "join_ms_p99": pct(ms, 0.99),
        "join_ms_max": max(ms),
        "connected_frame_bytes": max(sizes),
    }


async def main() -> None:
    spec = SPEC
    raise_nofile()
    target = Target(spec)
    mode = {"fanout": fanout, "durable": durable, "idle": idle, "join": join}[spec["mode"]]
    result = await mode(spec, target)
    loop_module = type(asyncio.get_running_loop()).__module__
    result["gen_loop"] = "uvloop" if loop_module.startswith("uvloop") else "asyncio"
    print(json.dumps(result))


def run() -> None:
    """On uvloop when it is installed (the dev extra): it reads a socket for less CPU."""
    if SPEC.get("loop", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main())
            return
    asyncio.run(main())


if __name__ == "__main__":
    SPEC.update(json.loads(Path(sys.argv[1]).read_text()))
    run()
