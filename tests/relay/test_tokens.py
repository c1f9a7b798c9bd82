"""Tokens: who is refused before joining, team and session tokens, invites, removal, logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed

from collab_lsp.protocol.permissions import Role
from collab_lsp.protocol.server_frames import DURABLE_TYPES
from collab_lsp.relay.server import Relay
from tests.helpers import Client, RelayHandle, relay_config


@dataclass
class Ctx:
    relay: RelayHandle
    session_id: str
    other_session_id: str
    secret: str
    alice: Client  # the host, already in the session: sees whoever joins

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"sub": "bob", "name": "bob", "sid": self.session_id, "role": "editor"}
        claims |= {"aud": "collab-relay", "iat": now, "exp": now + 600}
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def signed(self, **overrides: Any) -> str:
        return jwt.encode(self.claims(**overrides), self.secret, algorithm="HS256")


@pytest.fixture
async def ctx(relay: RelayHandle) -> Ctx:
    session_id = await relay.create_session(host="alice")
    other = await relay.create_session(title="Elsewhere", host="alice")
    alice = await relay.join(session_id, "alice", "host")
    return Ctx(relay, session_id, other, await relay.relay.store.relay_secret(), alice)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "host"
    return f"{header}.{b64(claims)}.{signature}"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def next_durable(client: Client) -> dict[str, Any]:
    while True:
        frame = await client.recv()
        if frame["type"] in DURABLE_TYPES and "seq" in frame:
            return frame


async def assert_nobody_joined(ctx: Ctx) -> None:
    marker = await ctx.alice.request({"type": "chat_message", "content": "marker"})
    following = await next_durable(ctx.alice)
    assert (following["type"], following["id"]) == ("chat_message", marker["id"])


async def refusal(client: Client) -> tuple[dict[str, Any], int | None]:
    """The error a refused client gets, and the close code that follows; nothing else."""
    error = await client.recv()
    await client.ws.wait_closed()
    with pytest.raises(ConnectionClosed):
        await client.ws.recv()  # no `connected`, nor anything else, came after the error
    return error, client.ws.close_code


async def refused_join(
    ctx: Ctx, token: str | None, query: str = ""
) -> tuple[dict[str, Any], int | None]:
    path = f"/ws/session/{ctx.session_id}"
    path += f"?token={token}{query}" if token is not None else ""
    return await refusal(await ctx.relay.connect_raw(path))


BAD_TOKENS: dict[str, tuple[Callable[[Ctx], str | None], str]] = {
    "no token": (lambda c: None, "AUTH_REQUIRED"),
    "garbage": (lambda c: "garbage", "INVALID_TOKEN"),
    "expired, issued with a ttl": (
        lambda c: c.relay.token(c.session_id, "bob", "editor", ttl=-60),
        "TOKEN_EXPIRED",
    ),
    "expired, crafted": (lambda c: c.signed(exp=int(time.time()) - 60), "TOKEN_EXPIRED"),
    "for another session": (lambda c: c.relay.token(c.other_session_id, "bob"), "INVALID_TOKEN"),
    "tampered payload": (lambda c: tampered(c.relay.token(c.session_id, "bob")), "INVALID_TOKEN"),
    "alg none": (
        lambda c: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(c.claims())}.",
        "INVALID_TOKEN",
    ),
    "HS256 with another secret": (
        lambda c: jwt.encode(c.claims(), "x" * 48, algorithm="HS256"),
        "INVALID_TOKEN",
    ),
    "RS256 without a provider key": (
        lambda c: jwt.encode(c.claims(), rsa_key(), algorithm="RS256"),
        "INVALID_TOKEN",
    ),
    "wrong audience": (lambda c: c.signed(aud="another-service"), "INVALID_TOKEN"),
    "no audience": (lambda c: c.signed(aud=None), "INVALID_TOKEN"),
    "no user": (lambda c: c.signed(sub=None), "INVALID_TOKEN"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_bad_token_is_refused_before_joining(ctx: Ctx, case: str) -> None:
    build, code = BAD_TOKENS[case]
    error, close_code = await refused_join(ctx, build(ctx))
    assert (error["type"], error["error_code"]) == ("error", code)
    assert close_code == 4001
    await assert_nobody_joined(ctx)


async def test_bad_token_in_a_join_frame_is_refused(ctx: Ctx) -> None:
    client = await ctx.relay.connect_raw("/ws")
    frame = {"type": "join_session", "session_id": ctx.session_id, "auth_token": "garbage"}
    await client.send(frame)
    error, close_code = await refusal(client)
    assert (error["error_code"], close_code) == ("INVALID_TOKEN", 4001)
    await assert_nobody_joined(ctx)


async def test_a_good_crafted_token_is_accepted(ctx: Ctx) -> None:
    """The refusals above are about the defect each case has, not about crafting."""
    bob = await ctx.relay.join(ctx.session_id, "bob", token=ctx.signed())
    assert bob.connected is not None and bob.connected["you"]["role"] == "editor"


async def test_authorization_bearer_header(ctx: Ctx) -> None:
    token = ctx.relay.token(ctx.session_id, "bob", "editor")
    bob = await ctx.relay.connect_raw(
        f"/ws/session/{ctx.session_id}", additional_headers={"Authorization": f"Bearer {token}"}
    )
    connected = await bob.expect("connected")
    assert connected["you"]["id"] == "bob"
    joined = await next_durable(ctx.alice)
    assert (joined["type"], joined["user"]["id"]) == ("user_joined", "bob")


async def test_team_token_creates_a_session_on_ws(relay: RelayHandle) -> None:
    team = relay.token(None, "dana", None)
    client = await relay.connect_raw("/ws")
    await client.send({"type": "create_session", "id": "new", "title": "Spike", "auth_token": team})
    created = await client.recv()
    assert (created["type"], created["ref"]) == ("session_created", "new")
    assert created["session"]["title"] == "Spike"
    connected = await client.recv()
    assert connected["type"] == "connected"
    assert connected["session_id"] == created["session"]["id"]
    assert (connected["you"]["id"], connected["you"]["role"]) == ("dana", "host")
    sent = await client.request({"type": "chat_message", "content": "first!"})
    assert sent["type"] == "ack"


async def test_team_token_in_the_bearer_header_creates_a_session(relay: RelayHandle) -> None:
    team = relay.token(None, "dana", None)
    client = await relay.connect_raw("/ws", additional_headers={"Authorization": f"Bearer {team}"})
    await client.send({"type": "create_session", "title": "Spike"})
    assert (await client.recv())["type"] == "session_created"
    assert (await client.recv())["you"]["role"] == "host"


async def test_session_token_cannot_create_a_session(ctx: Ctx) -> None:
    before = await ctx.relay.relay.store.list_sessions()
    client = await ctx.relay.connect_raw("/ws")
    token = ctx.relay.token(ctx.session_id, "bob", "editor")
    await client.send({"type": "create_session", "title": "Mine", "auth_token": token})
    error, _ = await refusal(client)
    assert error["error_code"] == "PERMISSION_DENIED"
    assert await ctx.relay.relay.store.list_sessions() == before


async def test_team_token_of_a_non_participant_cannot_join(ctx: Ctx) -> None:
    error, close_code = await refused_join(ctx, ctx.relay.token(None, "mallory", None))
    assert (error["error_code"], close_code) == ("PERMISSION_DENIED", 4001)
    await assert_nobody_joined(ctx)


async def test_team_token_of_a_participant_rejoins_with_their_role(ctx: Ctx) -> None:
    again = await ctx.relay.join(
        ctx.session_id, "alice", token=ctx.relay.token(None, "alice", None)
    )
    assert again.connected is not None and again.connected["you"]["role"] == "host"


async def invite(ctx: Ctx, **fields: Any) -> dict[str, Any]:
    reply = await ctx.alice.request(
        {"type": "invite", "role": "editor", **fields}, "invite_created"
    )
    assert reply["type"] == "invite_created", reply
    return reply


async def test_invite_gives_a_personal_token_for_reconnecting(ctx: Ctx) -> None:
    created = await invite(ctx)
    guest = await ctx.relay.join(ctx.session_id, "", token=created["token"], query="&name=Erin")
    assert guest.connected is not None
    you = guest.connected["you"]
    assert (you["username"], you["role"]) == ("Erin", "editor")
    assert you["token"] and you["token"] != created["token"]
    joined = await next_durable(ctx.alice)
    assert (joined["type"], joined["user"]["username"]) == ("user_joined", "Erin")
    await guest.close()
    back = await ctx.relay.join(ctx.session_id, "", token=you["token"])
    assert back.connected is not None
    assert (back.connected["you"]["id"], back.connected["you"]["role"]) == (you["id"], "editor")
    sent = await back.request({"type": "chat_message", "content": "hi, Erin here"})
    assert sent["type"] == "ack"


async def test_invite_max_uses_is_enforced(ctx: Ctx) -> None:
    created = await invite(ctx, max_uses=2)
    for name in ("Erin", "Finn"):
        guest = await ctx.relay.join(
            ctx.session_id, "", token=created["token"], query=f"&name={name}"
        )
        assert guest.connected is not None
        assert (await next_durable(ctx.alice))["user"]["username"] == name
    error, close_code = await refused_join(ctx, created["token"], "&name=Gus")
    assert (error["error_code"], close_code) == ("INVITE_INVALID", 4001)
    await assert_nobody_joined(ctx)


async def test_revoked_invite_is_refused(ctx: Ctx) -> None:
    created = await invite(ctx)
    revoked = await ctx.alice.request(
        {"type": "revoke_invite", "invite_id": created["invite_id"]}, "invite_revoked"
    )
    assert revoked["type"] == "invite_revoked"
    error, close_code = await refused_join(ctx, created["token"], "&name=Erin")
    assert (error["error_code"], close_code) == ("INVITE_INVALID", 4001)
    await assert_nobody_joined(ctx)


async def test_expired_invite_is_refused(ctx: Ctx) -> None:
    store, auth = ctx.relay.relay.store, ctx.relay.relay.auth
    assert auth is not None
    record = await store.create_invite(
        session_id=ctx.session_id, role=Role.EDITOR, created_by="alice", ttl_seconds=-60, max_uses=5
    )
    token = auth.issue(
        sub=None, name=None, sid=ctx.session_id, role=Role.EDITOR, invite_id=record.id
    )
    error, close_code = await refused_join(ctx, token, "&name=Erin")
    assert (error["error_code"], close_code) == ("INVITE_INVALID", 4001)
    stale = auth.issue(
        sub=None,
        name=None,
        sid=ctx.session_id,
        role=Role.EDITOR,
        invite_id=record.id,
        ttl_seconds=-60,
    )
    error, _ = await refused_join(ctx, stale, "&name=Erin")
    assert error["error_code"] == "TOKEN_EXPIRED"
    await assert_nobody_joined(ctx)


async def test_invite_needs_a_name(ctx: Ctx) -> None:
    created = await invite(ctx)
    error, _ = await refused_join(ctx, created["token"])
    assert (error["error_code"], error["field"]) == ("INVALID_FRAME", "name")
    await assert_nobody_joined(ctx)


async def test_invite_for_another_session_is_refused(ctx: Ctx) -> None:
    created = await invite(ctx)
    client = await ctx.relay.connect_raw(
        f"/ws/session/{ctx.other_session_id}?token={created['token']}&name=Erin"
    )
    error, close_code = await refusal(client)
    assert error["error_code"] in ("INVALID_TOKEN", "INVITE_INVALID")
    assert close_code == 4001


async def test_removed_users_token_no_longer_admits_them(ctx: Ctx) -> None:
    token = ctx.relay.token(ctx.session_id, "bob", "editor")
    bob = await ctx.relay.join(ctx.session_id, "bob", token=token)
    await next_durable(ctx.alice)  # bob joined
    removed = await ctx.alice.request({"type": "remove_user", "user_id": "bob"})
    assert removed["type"] == "ack"
    await bob.ws.wait_closed()
    assert bob.ws.close_code == 4003
    error, close_code = await refused_join(ctx, token)
    assert (error["error_code"], close_code) == ("REMOVED", 4003)
    error, close_code = await refused_join(ctx, ctx.relay.token(None, "bob", None))
    assert (error["error_code"], close_code) == ("REMOVED", 4003)


# -- an identity provider's key ---------------------------------------------------------------


@pytest.fixture
async def provider(tmp_path: Path) -> Any:
    key = rsa_key()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "idp.pem").write_bytes(pem)
    handle = RelayHandle(
        Relay(relay_config(tmp_path, jwt_public_key_file=str(tmp_path / "idp.pem")))
    )
    await handle.relay.start()
    try:
        yield handle, key, pem
    finally:
        for client in handle.clients:
            await client.close()
        await handle.relay.stop()


async def test_provider_tokens_carry_identity_only(provider: Any) -> None:
    relay, key, pem = provider
    session_id = await relay.create_session(host="alice")
    now = int(time.time())
    alice = jwt.encode({"sub": "alice", "name": "alice", "iat": now}, key, algorithm="RS256")
    host = await relay.join(session_id, "alice", token=alice)
    assert host.connected is not None and host.connected["you"]["role"] == "host"
    # A provider vouches for who someone is, never for a session or a role.
    claims = {"sub": "mallory", "iat": now, "sid": session_id, "role": "host"}
    client = await relay.connect_raw(
        f"/ws/session/{session_id}?token={jwt.encode(claims, key, algorithm='RS256')}"
    )
    error, _ = await refusal(client)
    assert error["error_code"] == "PERMISSION_DENIED"
    # Algorithm confusion: the provider's public key used as an HS256 secret.
    forged = _hs256_with_raw_key(claims, pem)
    client = await relay.connect_raw(f"/ws/session/{session_id}?token={forged}")
    error, close_code = await refusal(client)
    assert (error["error_code"], close_code) == ("INVALID_TOKEN", 4001)


def _hs256_with_raw_key(claims: dict[str, Any], key: bytes) -> str:
    """PyJWT refuses to HMAC with a PEM key, so sign by hand as an attacker would."""
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    digest = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


# -- logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["query", "bearer header", "join frame"])
async def test_tokens_never_appear_in_logs(
    ctx: Ctx, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="websockets")
    caplog.set_level(logging.DEBUG, logger="collab_lsp")
    quiet = logging.getLogger("tests.client")  # the test's own client must not log the token
    token = ctx.relay.token(ctx.session_id, "bob", "editor")
    rejected = tampered(token)
    for secret in (token, rejected):
        if how == "query":
            client = await ctx.relay.connect_raw(
                f"/ws/session/{ctx.session_id}?token={secret}", logger=quiet
            )
        elif how == "bearer header":
            client = await ctx.relay.connect_raw(
                f"/ws/session/{ctx.session_id}",
                additional_headers={"Authorization": f"Bearer {secret}"},
                logger=quiet,
            )
        else:
            client = await ctx.relay.connect_raw("/ws", logger=quiet)
            frame = {"type": "join_session", "session_id": ctx.session_id, "auth_token": secret}
            await client.send(frame)
        first = await client.recv()
        assert first["type"] == ("connected" if secret is token else "error")
    records = [r for r in caplog.records if r.name.startswith(("websockets", "collab_lsp"))]
    assert any(r.levelno == logging.DEBUG for r in records)  # the relay did log, verbosely
    for secret in (token, rejected):
        for part in [secret, *secret.split(".")[1:]]:  # nor the payload or the signature alone
            leaks = [r.getMessage() for r in records if part in r.getMessage()]
            assert not leaks, leaks[:3]
