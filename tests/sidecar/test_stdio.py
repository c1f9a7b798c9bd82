"""The sidecar's stdio: stdin read on the event loop when it is a pipe or a socket, pygls's
threaded reader otherwise; both serve LSP and end on `exit` or when stdin closes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collab_lsp.sidecar.stdio import stdin_on_event_loop

TIMEOUT = 30.0


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def session(root: Path) -> bytes:
    """initialize, initialized, shutdown and exit, as an editor sends them."""
    return b"".join(
        [
            frame(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"processId": None, "rootUri": root.as_uri(), "capabilities": {}},
                }
            ),
            frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
            frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}),
            frame({"jsonrpc": "2.0", "method": "exit"}),
        ]
    )


def responses(output: bytes) -> dict[int, Any]:
    """The responses (by id) in an LSP byte stream."""
    found = {}
    while b"\r\n\r\n" in output:
        header, _, rest = output.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in header.split(b"\r\n")
            if line.startswith(b"Content-Length")
        )
        if len(rest) < length:
            break  # the rest has not arrived yet
        message = json.loads(rest[:length])
        output = rest[length:]
        if "id" in message and "method" not in message:
            found[message["id"]] = message
    return found


def env() -> dict[str, str]:
    values = {**os.environ, "COLLAB_LOG_LEVEL": "WARNING"}
    for name in ("COLLAB_RELAY_URL", "COLLAB_TOKEN", "COLLAB_SESSION", "COLLAB_INVITE"):
        values.pop(name, None)
    return values


def test_pipes_and_separate_sockets_are_read_on_the_event_loop(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    out_read, out_write = os.pipe()
    left, right = socket.socketpair()
    other_left, other_right = socket.socketpair()
    regular = (tmp_path / "input").open("wb+")
    try:
        with (
            open(read_end, "rb", closefd=False) as stdin,
            open(out_write, "wb", closefd=False) as out,
        ):
            assert stdin_on_event_loop(stdin, out)
        with left.makefile("rb") as stdin, other_left.makefile("wb") as out:
            assert stdin_on_event_loop(stdin, out)  # libuv (VS Code, Neovim) gives socket pairs
        with left.makefile("rb") as stdin, left.makefile("wb") as out:
            assert not stdin_on_event_loop(stdin, out)  # one socket both ways: left blocking
        with open(out_write, "wb", closefd=False) as out:
            assert not stdin_on_event_loop(regular, out)  # a file: pygls's reader
    finally:
        regular.close()
        for fd in (read_end, write_end, out_read, out_write):
            os.close(fd)
        for sock in (left, right, other_left, other_right):
            sock.close()


@pytest.mark.skipif(sys.platform == "win32", reason="Unix socket pairs")
def test_the_sidecar_serves_over_socket_pairs_and_exits(tmp_path: Path) -> None:
    editor_in, sidecar_in = socket.socketpair()
    editor_out, sidecar_out = socket.socketpair()
    process = subprocess.Popen(
        [sys.executable, "-m", "collab_lsp.sidecar"],
        stdin=sidecar_in.fileno(),
        stdout=sidecar_out.fileno(),
        env=env(),
        cwd=tmp_path,
    )
    sidecar_in.close()
    sidecar_out.close()
    try:
        # As the LSP specification asks, `exit` only once `shutdown` has been answered.
        *opening, exit_message = session(tmp_path).split(b"Content-Length")[1:]
        editor_in.sendall(b"".join(b"Content-Length" + part for part in opening))
        editor_out.settimeout(TIMEOUT)
        output = b""
        while 2 not in responses(output):
            output += editor_out.recv(65536)
        editor_in.sendall(b"Content-Length" + exit_message)
        assert process.wait(TIMEOUT) == 0
        found = responses(output)
        assert found[1]["result"]["serverInfo"]["name"] == "collab-lsp"
        assert found[2]["result"] is None
    finally:
        process.kill()
        editor_in.close()
        editor_out.close()


def test_the_sidecar_ends_when_the_editor_closes_its_stdin(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "collab_lsp.sidecar"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env(),
        cwd=tmp_path,
    )
    assert process.stdin is not None and process.stdout is not None
    initialize = session(tmp_path).split(b"Content-Length")[1]
    process.stdin.write(b"Content-Length" + initialize)
    process.stdin.close()
    assert process.wait(TIMEOUT) == 0
    assert responses(process.stdout.read())[1]["result"]["capabilities"]


def test_a_regular_file_as_stdin_uses_pygls_reader(tmp_path: Path) -> None:
    script = tmp_path / "session.lsp"
    initialize, initialized = session(tmp_path).split(b"Content-Length")[1:3]
    script.write_bytes(b"Content-Length" + initialize + b"Content-Length" + initialized)
    with script.open("rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "collab_lsp.sidecar"],
            stdin=stdin,
            capture_output=True,
            env=env(),
            cwd=tmp_path,
            timeout=TIMEOUT,
        )
    assert done.returncode == 0  # the end of the file ends the session
    assert responses(done.stdout)[1]["result"]["serverInfo"]["name"] == "collab-lsp"
