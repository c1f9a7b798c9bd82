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
from collab_lsp.relay.broker import BrokerUnavailable
from collab_lsp.relay.config import ConfigError, RelayConfig, load_config
from collab_lsp.relay.gc_tuning import tune_for_serving
from collab_lsp.relay.server import Relay
from collab_lsp.relay.store import Store, make_store, transfer
from collab_lsp.relay.store.base import StoreUnavailable

__all__ = ["main"]

_SETTINGS = (
    "host",
    "port",
    "db",
    "database_url",
    "database_schema",
    "secret",
    "synchronous",
    "compression",
    "public_url",
    "log_level",
    "redis_url",
    "redis_prefix",
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
        return _run_loop(run(args, config))
    except (ConfigError, StoreUnavailable, BrokerUnavailable, _UsageError) as error:
        print(f"collab-relay: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """uvloop when installed (the ``fast`` extra: about a quarter less CPU per delivered
    frame, see docs/benchmarks.md), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


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
        command.add_argument(
            "--redis-url",
            help="Redis URL, to run several relays together (needs --database-url), e.g. "
            "redis://host:6379/0 (env: COLLAB_RELAY_REDIS_URL)",
        )
        command.add_argument(
            "--redis-prefix",
            help="prefix of every Redis key and channel, to keep deployments sharing one "
            "Redis apart (env: COLLAB_RELAY_REDIS_PREFIX; default collab)",
        )
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
    _add_transfer_commands(commands, common)
    return parser


# -- serving ------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace, config: RelayConfig) -> int:
    _configure_logging(config)
    relay = Relay(config)
    await relay.start()
    tune_for_serving()
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


# -- moving a database: migrate, export, import -------------------------------------------


def _add_transfer_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    text = "apply pending schema migrations to the database"
    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help=text,
        description=f"{text.capitalize()} (--db, or --database-url and --database-schema), "
        "and print its schema version before and after. Safe to repeat, and safe while "
        "relays run on it. A relay also migrates when it opens its database, unless "
        "auto_migrate = false (env: COLLAB_RELAY_AUTO_MIGRATE=false): then it refuses a "
        "database whose schema is behind, and this command is the upgrade step. A database "
        "whose schema is newer than this collab-relay is refused and left alone.",
    )
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing: print the version, exit 1 when migrations are pending",
    )
    migrate.set_defaults(run=_migrate)

    text = "write the whole database to a JSON Lines file"
    export = commands.add_parser(
        "export",
        parents=[common],
        help=text,
        description=f"{text.capitalize()}, from one consistent snapshot: sessions, "
        "participants, chat, comments with their replies and reactions, the event log, "
        "invites, the relay secret and the epoch. The file holds the relay secret: guard it "
        "like the database. Stop the relay first, so that nothing is written after the "
        "snapshot (or import with --new-epoch).",
    )
    export.add_argument(
        "--output", required=True, metavar="FILE", help="the file to write (- for stdout)"
    )
    export.set_defaults(run=_export)

    text = "load an export file into an empty database"
    load = commands.add_parser(
        "import",
        parents=[common],
        help=text,
        description=f"{text.capitalize()} (migrating its schema first); a database that "
        "holds any data is refused. All or nothing: a bad line is reported with its "
        "number and field, and nothing is imported. Ids, seqs and timestamps are kept, and "
        "so is the relay secret: tokens minted before the move stay valid (when the relays "
        "sign with --secret / COLLAB_RELAY_SECRET instead, configure the same secret). The "
        "epoch is kept too, so editors' sidecars resume where they were. Stop the relays on "
        "the target while importing.",
    )
    load.add_argument(
        "--input", required=True, metavar="FILE", help="the export file (- for stdin)"
    )
    load.add_argument(
        "--new-epoch",
        action="store_true",
        help="give the imported history a new epoch, so every client reloads it instead of "
        "resuming: use it when the old relay went on taking writes after the export",
    )
    load.set_defaults(run=_import)


def _location(config: RelayConfig) -> transfer.StoreLocation:
    try:
        return transfer.StoreLocation.from_config(config)
    except transfer.TransferError as error:
        raise _UsageError(str(error)) from None


async def _migrate(args: argparse.Namespace, config: RelayConfig) -> int:
    location = _location(config)
    latest = transfer.latest_schema_version(location.kind)
    if args.check:
        version = await transfer.schema_version(location)
        if version > latest:
            raise _UsageError(
                f"{location.where}: schema version {version} is newer than this collab-relay "
                f"({latest}); upgrade collab-lsp"
            )
        if version < latest:
            print(
                f"{location.where}: schema version {version}, this collab-relay needs "
                f"{latest}: {_plural(latest - version, 'migration')} pending; "
                "run `collab-relay migrate`"
            )
            return 1
        print(f"{location.where}: schema version {version}, up to date")
        return 0
    before, after = await transfer.migrate(location)
    if before == after:
        print(f"{location.where}: schema version {after}, up to date (nothing to do)")
    else:
        applied = _plural(after - before, "migration")
        print(f"{location.where}: schema version {before} -> {after} ({applied} applied)")
    return 0


async def _export(args: argparse.Namespace, config: RelayConfig) -> int:
    location = _location(config)
    try:
        if args.output == "-":
            summary = await transfer.export_store(location, sys.stdout)
        else:
            summary = await transfer.export_to_file(location, args.output)
    except transfer.TransferError as error:
        raise _UsageError(f"cannot export: {error}") from None
    except OSError as error:
        raise _UsageError(f"cannot write --output {args.output}: {error}") from None
    print(
        f"exported {_counted(summary.counts)} from {location.where} "
        f"(schema version {summary.schema_version}) to {args.output}",
        file=sys.stderr if args.output == "-" else sys.stdout,
    )
    return 0


async def _import(args: argparse.Namespace, config: RelayConfig) -> int:
    location = _location(config)
    try:
        if args.input == "-":
            summary = await transfer.import_store(
                location, sys.stdin.buffer, new_epoch=args.new_epoch
            )
        else:
            with open(args.input, "rb") as lines:  # noqa: ASYNC230 - read as it is imported
                summary = await transfer.import_store(location, lines, new_epoch=args.new_epoch)
    except transfer.TransferError as error:
        raise _UsageError(f"cannot import {args.input}: {error}") from None
    except OSError as error:
        raise _UsageError(f"cannot read --input {args.input}: {error}") from None
    print(f"imported {_counted(summary.counts)} into {location.where}")
    if summary.new_epoch:
        print(f"new epoch {summary.epoch}: editors' sidecars reload the sessions when they connect")
    elif summary.epoch is not None:
        print(f"epoch {summary.epoch} kept: editors' sidecars resume where they were")
    if summary.secret_kept:
        print("relay secret kept: tokens minted before the move stay valid")
    else:
        print(
            "the export holds no relay secret (the old relay signed tokens with a configured "
            "--secret): give the relays on this database the same secret"
        )
    return 0


def _counted(counts: dict[str, int]) -> str:
    names = (
        ("session", "session", "sessions"),
        ("participant", "participant", "participants"),
        ("message", "message or comment", "messages and comments"),
        ("event", "event", "events"),
        ("invite", "invite", "invites"),
        ("user", "user", "users"),
    )
    return ", ".join(
        f"{counts[key]} {one if counts[key] == 1 else many}" for key, one, many in names
    )


def _plural(count: int, name: str) -> str:
    return f"{count} {name}" + ("" if count == 1 else "s")


if __name__ == "__main__":
    raise SystemExit(main())
