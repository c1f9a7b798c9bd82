"""`collab-relay`: run the relay, and administer sessions and tokens in its database."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError

from collab_lsp import __version__
from collab_lsp.protocol.fields import Name, Title
from collab_lsp.protocol.models import ParticipantKind, SessionStatus
from collab_lsp.protocol.permissions import Role
from collab_lsp.relay.auth import Authenticator
from collab_lsp.relay.config import ConfigError, RelayConfig, load_config
from collab_lsp.relay.server import Relay
from collab_lsp.relay.store import Store, make_store
from collab_lsp.relay.store.base import StoreUnavailable

__all__ = ["main"]

_SETTINGS = (
    "host",
    "port",
    "db",
    "secret",
    "synchronous",
    "compression",
    "public_url",
    "log_level",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        config = load_config(
            file=args.config,
            overrides={key: getattr(args, key, None) for key in _SETTINGS},
        )
        run: Callable[[argparse.Namespace, RelayConfig], Coroutine[Any, Any, int]] = args.run
        return asyncio.run(run(args, config))
    except (ConfigError, StoreUnavailable, _UsageError) as error:
        print(f"collab-relay: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collab-relay",
        description="The collab-lsp relay: a team service that editors' sidecars connect to.",
    )
    parser.add_argument("--version", action="version", version=f"collab-relay {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML file with settings (env: COLLAB_RELAY_CONFIG)")
    common.add_argument("--db", help="SQLite file (env: COLLAB_RELAY_DB; default collab-relay.db)")
    common.add_argument(
        "--database-url",
        help="PostgreSQL URL, for several relays sharing state, e.g. "
        "postgresql://user@host/db (env: COLLAB_RELAY_DATABASE_URL); overrides --db",
    )
    common.add_argument(
        "--database-schema", help="PostgreSQL schema (env: COLLAB_RELAY_DATABASE_SCHEMA)"
    )
    common.add_argument(
        "--secret", help="token signing secret, >= 32 chars (env: COLLAB_RELAY_SECRET)"
    )
    commands = parser.add_subparsers(title="commands")

    for name, run, text in (
        ("serve", _serve, "run the relay"),
        ("demo", _demo, "create a demo session, print how to join it, and run the relay"),
    ):
        command = commands.add_parser(name, parents=[common], help=text, description=text)
        command.add_argument("--host", help="address to bind (env: COLLAB_RELAY_HOST; 127.0.0.1)")
        command.add_argument(
            "--port", type=int, help="port (env: COLLAB_RELAY_PORT; 8765; 0 = any)"
        )
        command.add_argument(
            "--synchronous",
            choices=["NORMAL", "FULL"],
            help="SQLite durability: NORMAL survives a killed process, FULL also a power loss",
        )
        command.add_argument(
            "--compression",
            action="store_true",
            default=None,
            help="offer permessage-deflate (costs fan-out capacity)",
        )
        command.add_argument("--public-url", help="ws(s):// URL clients use, for printed links")
        command.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        command.set_defaults(run=run)

    session = commands.add_parser("session", help="create, list and end sessions")
    session_commands = session.add_subparsers(title="session commands")
    create = session_commands.add_parser("create", parents=[common], help="create a session")
    create.add_argument("--title", required=True)
    create.add_argument("--host", dest="host_name", required=True, help="the host's name")
    create.add_argument("--ttl", type=int, default=None, help="host token lifetime in seconds")
    create.add_argument("--relay-url", help="relay URL for the printed join line")
    create.set_defaults(run=_session_create)
    listing = session_commands.add_parser("list", parents=[common], help="list sessions")
    listing.set_defaults(run=_session_list)
    end = session_commands.add_parser("end", parents=[common], help="end a session for everyone")
    end.add_argument("session_id")
    end.set_defaults(run=_session_end)

    token = commands.add_parser("token", parents=[common], help="mint a token for a participant")
    token.add_argument(
        "--session",
        dest="session_id",
        help="session id (leave out for a team token that may create sessions)",
    )
    token.add_argument("--user", required=True, help="user name (also the user id)")
    token.add_argument("--role", choices=[role.value for role in Role], default="editor")
    token.add_argument("--kind", choices=[kind.value for kind in ParticipantKind], default="human")
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    token.add_argument("--relay-url", help="relay URL for the printed join line")
    token.set_defaults(run=_token)
    return parser


# -- serving ------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace, config: RelayConfig) -> int:
    _configure_logging(config)
    relay = Relay(config)
    await relay.start()
    # One line on stdout once the port is bound: scripts and tests wait for it.
    print(f"collab-relay listening on {relay.url}", flush=True)
    await _until_signalled()
    await relay.stop()
    return 0


async def _demo(args: argparse.Namespace, config: RelayConfig) -> int:
    _configure_logging(config)
    relay = Relay(config)
    await relay.start()
    assert relay.auth is not None
    session = await relay.store.create_session(
        title="Demo session", host_id="host", host_name="host", host_kind=ParticipantKind.HUMAN
    )
    host_token = relay.auth.issue(sub="host", name="host", sid=session.id, role=Role.HOST)
    guest_token = relay.auth.issue(sub="guest", name="guest", sid=session.id, role=Role.EDITOR)
    print(f"collab-relay {__version__} running at {relay.url}  (Ctrl-C stops it)\n")
    _print_join("host (you)", relay.url, session.id, host_token)
    _print_join("a second editor (role editor)", relay.url, session.id, guest_token)
    sys.stdout.flush()
    await _until_signalled()
    await relay.stop()
    return 0


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def _configure_logging(config: RelayConfig) -> None:
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# -- administration -------------------------------------------------------------------------


async def _with_store(
    config: RelayConfig, work: Callable[[Store, Authenticator], Awaitable[Any]]
) -> Any:
    store = make_store(config)
    await store.open()
    try:
        auth = Authenticator(config.secret or await store.relay_secret())
        return await work(store, auth)
    finally:
        await store.close()


def _valid(kind: Any, value: str, flag: str) -> str:
    from pydantic import TypeAdapter

    try:
        return str(TypeAdapter(kind).validate_python(value))
    except ValidationError as exc:
        raise _UsageError(f"{flag}: {exc.errors()[0]['msg']}") from None


async def _session_create(args: argparse.Namespace, config: RelayConfig) -> int:
    title = _valid(Title, args.title, "--title")
    host = _valid(Name, args.host_name, "--host")

    async def work(store: Store, auth: Authenticator) -> int:
        session = await store.create_session(
            title=title, host_id=host, host_name=host, host_kind=ParticipantKind.HUMAN
        )
        token = auth.issue(
            sub=host, name=host, sid=session.id, role=Role.HOST, ttl_seconds=args.ttl
        )
        print(f"session: {session.id}")
        print(f"host token: {token}")
        _print_join(host, args.relay_url or config.ws_url(), session.id, token)
        return 0

    result: int = await _with_store(config, work)
    return result


async def _session_list(args: argparse.Namespace, config: RelayConfig) -> int:
    async def work(store: Store, auth: Authenticator) -> int:
        sessions = await store.list_sessions()
        if not sessions:
            print("no sessions")
        for session in sessions:
            participants = await store.list_participants(session.id)
            print(
                f"{session.id}\t{session.status.value}\t{len(participants)} participants\t"
                f"{session.created_at}\t{session.title}"
            )
        return 0

    result: int = await _with_store(config, work)
    return result


async def _session_end(args: argparse.Namespace, config: RelayConfig) -> int:
    async def work(store: Store, auth: Authenticator) -> int:
        session = await store.get_session(args.session_id)
        if session is None:
            raise _UsageError(
                f"no session {args.session_id!r}; `collab-relay session list` shows them"
            )
        if session.status is SessionStatus.ENDED:
            print(f"session {session.id} had already ended")
            return 0
        event = await store.end_session(session.id, None, None)
        print(f"session {session.id} ended (seq {event.seq}); a running relay tells its clients")
        return 0

    result: int = await _with_store(config, work)
    return result


async def _token(args: argparse.Namespace, config: RelayConfig) -> int:
    user = _valid(Name, args.user, "--user")

    async def work(store: Store, auth: Authenticator) -> int:
        if args.session_id is not None:
            session = await store.get_session(args.session_id)
            if session is None:
                raise _UsageError(
                    f"no session {args.session_id!r}; `collab-relay session list` shows them"
                )
        token = auth.issue(
            sub=user,
            name=user,
            sid=args.session_id,
            role=Role(args.role) if args.session_id else None,
            kind=ParticipantKind(args.kind),
            ttl_seconds=args.ttl,
        )
        print(token)
        if args.session_id is not None:
            _print_join(user, args.relay_url or config.ws_url(), args.session_id, token, sys.stderr)
        return 0

    result: int = await _with_store(config, work)
    return result


def _print_join(who: str, relay_url: str, session_id: str, token: str, stream: Any = None) -> None:
    stream = stream or sys.stdout
    link = "collab://join?" + urlencode({"relay": relay_url, "token": token})
    print(f"Join as {who}:", file=stream)
    print(f"  invite link:  {link}", file=stream)
    print(f"  environment:  COLLAB_RELAY_URL={relay_url} COLLAB_TOKEN={token}", file=stream)
    print(f"  websocket:    {relay_url}/ws/session/{session_id}?token={token}\n", file=stream)


if __name__ == "__main__":
    raise SystemExit(main())
