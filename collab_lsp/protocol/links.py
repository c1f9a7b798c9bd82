"""Invite links and relay URLs: ``collab://join?relay=<ws-url>&token=<jwt>``."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = ["invite_link", "normalize_relay_url", "parse_invite_link"]


def invite_link(relay_url: str, token: str) -> str:
    return "collab://join?" + urlencode({"relay": normalize_relay_url(relay_url), "token": token})


def parse_invite_link(link: str) -> tuple[str, str]:
    """Return (relay URL, token) from an invite link; ValueError says what is missing.

    VS Code's ``vscode://<publisher>.<name>/join?relay=...&token=...`` form is
    accepted too: only the query matters.
    """
    parts = urlsplit(link.strip())
    if parts.scheme not in ("collab", "vscode", "vscode-insiders"):
        raise ValueError("an invite link starts with collab://join?relay=...&token=...")
    query = parse_qs(parts.query)
    relay = query.get("relay", [""])[-1]
    token = query.get("token", [""])[-1]
    if not relay:
        raise ValueError("the invite link has no relay=...")
    if not token:
        raise ValueError("the invite link has no token=...")
    return normalize_relay_url(relay), token


def normalize_relay_url(url: str) -> str:
    """``ws[s]://host:port`` without a trailing ``/`` or ``/ws`` path; http(s) becomes ws(s)."""
    url = url.strip()
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"relay URL {url!r} must look like ws://host:port or wss://host")
    path = parts.path.rstrip("/")
    if path.endswith("/ws"):
        path = path[: -len("/ws")]
    return f"{scheme}://{parts.netloc}{path}"
