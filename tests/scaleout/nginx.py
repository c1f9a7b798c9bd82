"""nginx in front of relays, started from the shipped config, for the multi-relay tests.

``run_nginx(ports, tmp_path)`` renders ``deploy/nginx/collab-relay.conf`` (the file
operators copy) for one test and runs it: the upstream servers become the given relays'
ports (with the shipped ``max_fails``/``fail_timeout``), the plain-HTTP server listens on a
free loopback port, the logs go to a new folder in ``tmp_path``, and the TLS server is left
out (``tls=True`` keeps it, with a self-signed certificate and a port of its own). Every
other line (timeouts, failover, the log format, error-log levels, access rules) is the
shipped text, so whatever passes through this nginx proves the shipped config.

The shipped file is http{}-level configuration; a small main config around it sets what
a test needs (pid file, temporary directories, one worker). Waiting is for nginx's pid
file and port; the timeouts only guard against hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import grp
import ipaddress
import os
import pwd
import re
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SHIPPED_CONFIG",
    "ConfigBlock",
    "NginxHandle",
    "location_section",
    "nginx_binary",
    "render_config",
    "run_nginx",
    "top_level_blocks",
]

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "collab-relay.conf"
UPSTREAM = "collab_relays"
START_TIMEOUT = 10.0
_ATTEMPTS = 5
_LOCATIONS_BEGIN = "# -- locations:"
_LOCATIONS_END = "# -- end of locations --"


@dataclass
class NginxHandle:
    port: int
    prefix: Path
    access_log: Path
    error_log: Path
    process: asyncio.subprocess.Process
    tls_port: int | None = None
    tls_cert: Path | None = None

    @property
    def url(self) -> str:
        """The plain-HTTP server, as a WebSocket base URL (append /ws or /ws/session/ID)."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        """The TLS server (only with ``run_nginx(..., tls=True)``); trust ``tls_cert``."""
        assert self.tls_port is not None, "start nginx with tls=True"
        return f"wss://127.0.0.1:{self.tls_port}"

    def log_text(self) -> str:
        """Both logs, for asserting that something never appears in either."""
        return _read(self.access_log) + "\n" + _read(self.error_log)

    async def wait_for_access_log(
        self, predicate: Callable[[str], bool], count: int = 1, timeout: float = START_TIMEOUT
    ) -> list[str]:
        """Every access-log line, once ``count`` of them satisfy ``predicate``.

        nginx writes a request's line when the request ends: for a WebSocket, once the
        connection has closed, so a test closes its client and then waits here.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            lines = _read(self.access_log).splitlines()
            if sum(1 for line in lines if predicate(line)) >= count:
                return lines
            if loop.time() > deadline:
                raise TimeoutError(
                    f"fewer than {count} such lines in {self.access_log}:\n" + "\n".join(lines)
                )
            await asyncio.sleep(0.02)


def _read(path: Path) -> str:
    """The file's text, or "" while it does not exist yet."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# -- the shipped file -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigBlock:
    """A top-level block of the shipped file: ``header {`` at column 0 up to ``}``."""

    header: str  # e.g. "upstream collab_relays", "server"
    first: int  # index of the header line
    last: int  # index of the closing "}" line
    lines: tuple[str, ...]  # the whole block, header and "}" included

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def is_tls(self) -> bool:
        return any(re.match(r"\s*listen\s[^;]*\bssl\b", line) for line in self.lines)


def top_level_blocks(text: str) -> list[ConfigBlock]:
    """The file's top-level blocks. The shipped file opens each at column 0 and closes it
    with a ``}`` alone at column 0; a block shaped otherwise is an error, not a guess."""
    lines = text.splitlines()
    blocks: list[ConfigBlock] = []
    index = 0
    while index < len(lines):
        match = re.match(r"^([a-z_][^#{]*?)\s*\{\s*$", lines[index])
        if match:
            end = next((i for i in range(index + 1, len(lines)) if lines[i] == "}"), None)
            if end is None:
                raise ValueError(f"{SHIPPED_CONFIG}: block {match.group(1)!r} is never closed")
            blocks.append(ConfigBlock(match.group(1), index, end, tuple(lines[index : end + 1])))
            index = end
        index += 1
    return blocks


def location_section(block: ConfigBlock) -> str:
    """The server block's locations, between the shipped file's two marker comments."""
    text = block.text
    begin, end = text.find(_LOCATIONS_BEGIN), text.find(_LOCATIONS_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{SHIPPED_CONFIG}: a server block lacks the location markers")
    return text[begin:end]


def render_config(
    text: str,
    *,
    upstream_ports: Sequence[int],
    port: int,
    logs: Path,
    tls: tuple[int, Path, Path] | None = None,
) -> str:
    """The shipped http{}-level text with this test's ports and files.

    ``tls`` is (port, certificate, key) to keep the TLS server, or None to leave it out.
    """
    blocks = top_level_blocks(text)
    upstreams = [b for b in blocks if b.header == f"upstream {UPSTREAM}"]
    plain = [b for b in blocks if b.header == "server" and not b.is_tls]
    secure = [b for b in blocks if b.header == "server" and b.is_tls]
    if len(upstreams) != 1 or len(plain) != 1 or len(secure) != 1:
        raise ValueError(
            f"{SHIPPED_CONFIG}: expected one `upstream {UPSTREAM}`, one plain-HTTP server and "
            f"one TLS server; found {len(upstreams)}, {len(plain)} and {len(secure)}"
        )
    lines = text.splitlines()
    replacements = {
        upstreams[0].first: _upstream(upstreams[0], upstream_ports),
        plain[0].first: _listen(plain[0], f"127.0.0.1:{port}"),
    }
    if tls is None:
        replacements[secure[0].first] = []
    else:
        tls_port, cert, key = tls
        block = _listen(secure[0], f"127.0.0.1:{tls_port} ssl")
        block = [
            re.sub(r"^(\s*ssl_certificate)(\s+)\S+;", rf"\g<1>\g<2>{cert};", line) for line in block
        ]
        block = [
            re.sub(r"^(\s*ssl_certificate_key)(\s+)\S+;", rf"\g<1>\g<2>{key};", line)
            for line in block
        ]
        replacements[secure[0].first] = block
    ends = {b.first: b.last for b in blocks}
    out: list[str] = []
    index = 0
    while index < len(lines):
        if index in replacements:
            out.extend(replacements[index])
            index = ends[index] + 1
            continue
        out.append(lines[index])
        index += 1
    rendered = "\n".join(out) + "\n"
    # Every log the shipped file names, moved into this test's folder (same base names,
    # so lines that share a file in production share one here too).
    return re.sub(
        r"^(\s*(?:access_log|error_log)\s+)(/\S+?)(?=[\s;])",
        lambda m: m.group(1) + str(logs / Path(m.group(2)).name),
        rendered,
        flags=re.M,
    )


def _upstream(block: ConfigBlock, ports: Sequence[int]) -> list[str]:
    """The upstream block with one server per port, with the first shipped server's options."""
    servers = [line for line in block.lines if re.match(r"\s*server\s", line)]
    if not servers or not ports:
        raise ValueError("the upstream needs shipped server lines and at least one port")
    shipped = re.match(r"(\s*)server\s+\S+\s*(.*?);", servers[0])
    assert shipped is not None
    indent, options = shipped.groups()
    rendered = [f"{indent}server 127.0.0.1:{port} {options};".rstrip() for port in ports]
    out: list[str] = []
    for line in block.lines:
        if line in servers:
            out.extend(rendered)
            rendered = []
        else:
            out.append(line)
    return out


def _listen(block: ConfigBlock, address: str) -> list[str]:
    """The block with its listen lines replaced by one on ``address``."""
    out: list[str] = []
    done = False
    for line in block.lines:
        match = re.match(r"(\s*)listen\s", line)
        if match is None:
            out.append(line)
        elif not done:
            out.append(f"{match.group(1)}listen {address};")
            done = True
    return out


def _main_config(prefix: Path, include: Path, error_log: Path) -> str:
    temp = prefix / "temp"
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / name).mkdir(parents=True, exist_ok=True)
    # As root, nginx's workers would switch to "nobody", who cannot enter pytest's folders.
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
    return (
        f"# Generated by tests/scaleout/nginx.py around {SHIPPED_CONFIG.name}.\n"
        f"{user}"
        "worker_processes 1;\n"
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {error_log} error;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    access_log off;  # the shipped servers set their own\n"
        f"    client_body_temp_path {temp / 'body'};\n"
        f"    proxy_temp_path {temp / 'proxy'};\n"
        f"    fastcgi_temp_path {temp / 'fastcgi'};\n"
        f"    uwsgi_temp_path {temp / 'uwsgi'};\n"
        f"    scgi_temp_path {temp / 'scgi'};\n"
        f"    include {include};\n"
        "}\n"
    )


# -- running it -------------------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise RuntimeError(
            "nginx is not installed: scripts/test.sh installs it (apt-get install nginx)"
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "relay.crt", folder / "relay.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@contextlib.asynccontextmanager
async def run_nginx(
    upstream_ports: Sequence[int],
    tmp_path: Path,
    *,
    tls: bool = False,
    edit: Callable[[str], str] | None = None,
) -> AsyncIterator[NginxHandle]:
    """nginx with the shipped config in front of relays on these loopback ports.

    ``edit`` changes the shipped text before rendering: only for tests that show what a
    change to the shipped file would do.
    """
    prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp_path))  # one per call
    logs = prefix / "logs"
    logs.mkdir()
    shipped = SHIPPED_CONFIG.read_text(encoding="utf-8")
    if edit is not None:
        shipped = edit(shipped)
    access_log = logs / _shipped_log_name(shipped, "access_log")
    error_log = logs / _shipped_log_name(shipped, "error_log")
    cert, key = _self_signed(prefix) if tls else (None, None)
    site, main, pid_file = prefix / SHIPPED_CONFIG.name, prefix / "nginx.conf", prefix / "nginx.pid"
    main.write_text(_main_config(prefix, site, error_log), encoding="utf-8")
    binary = nginx_binary()
    for _attempt in range(_ATTEMPTS):
        port = _free_port()
        tls_port = _free_port() if tls else None
        site.write_text(
            render_config(
                shipped,
                upstream_ports=upstream_ports,
                port=port,
                logs=logs,
                tls=(tls_port, cert, key) if tls_port and cert and key else None,
            ),
            encoding="utf-8",
        )
        pid_file.unlink(missing_ok=True)
        output = prefix / "nginx.out"  # nginx's stderr: why it did not start
        with output.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                binary, "-p", str(prefix), "-c", str(main), "-g", "daemon off;",
                stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink,
            )  # fmt: skip
        handle = NginxHandle(port, prefix, access_log, error_log, process, tls_port, cert)
        try:
            started = await _wait_started(handle, pid_file, [p for p in (port, tls_port) if p])
        except BaseException:
            await _stop(process)
            raise
        if not started:
            said = _read(output)
            if os.strerror(errno.EADDRINUSE) in said:
                continue  # another process took the port between our probe and nginx's bind
            raise RuntimeError(f"nginx did not start (exit {process.returncode}):\n{said}")
        try:
            yield handle
        finally:
            await _stop(process)
        return
    raise RuntimeError(f"nginx found no free port in {_ATTEMPTS} attempts")


def _shipped_log_name(text: str, directive: str) -> str:
    match = re.search(rf"^\s*{directive}\s+(/\S+?)[\s;]", text, re.M)
    if match is None:
        raise ValueError(f"{SHIPPED_CONFIG}: no {directive} with an absolute path")
    return Path(match.group(1)).name


async def _wait_started(handle: NginxHandle, pid_file: Path, ports: list[int]) -> bool:
    """True once nginx runs and accepts connections; False if it exited.

    nginx writes its pid file only after binding every listen address, so a port that
    answers while the pid file names our process is nginx's and not a stranger's.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handle.process.wait(), 0.02)
        if handle.process.returncode is not None:
            return False
        if _read(pid_file).strip() == str(handle.process.pid):
            try:
                for port in ports:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    await writer.wait_closed()
            except OSError:
                pass
            else:
                return True
        if loop.time() > deadline:
            raise TimeoutError(f"nginx did not accept connections within {START_TIMEOUT} s")


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (nginx's fast shutdown: open WebSockets are cut), SIGKILL if it hangs."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), START_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
