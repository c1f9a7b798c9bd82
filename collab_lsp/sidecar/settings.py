"""Sidecar settings: initializationOptions, then didChangeConfiguration, then environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from collab_lsp.protocol.links import normalize_relay_url, parse_invite_link

__all__ = ["SettingsError", "SidecarSettings", "merge_settings"]

_ENVIRONMENT = {
    "relay_url": "COLLAB_RELAY_URL",
    "token": "COLLAB_TOKEN",
    "name": "COLLAB_NAME",
    "session_id": "COLLAB_SESSION",
    "invite": "COLLAB_INVITE",
    "log_level": "COLLAB_LOG_LEVEL",
}
_ALIASES = {"relayUrl": "relay_url", "sessionId": "session_id", "logLevel": "log_level"}


class SettingsError(ValueError):
    """A setting is wrong; the message names it and the fix."""


class SidecarSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    relay_url: str | None = None
    token: str | None = Field(default=None, repr=False)
    name: str | None = Field(default=None, max_length=64)
    session_id: str | None = None
    kind: Literal["human", "agent"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("relay_url")
    @classmethod
    def _relay(cls, value: str | None) -> str | None:
        return normalize_relay_url(value) if value else None

    @property
    def complete(self) -> bool:
        return bool(self.relay_url and self.token)


def merge_settings(
    *layers: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> SidecarSettings:
    """Later layers win over earlier ones; the environment fills what none gives."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    environment = {
        key: environ[variable] for key, variable in _ENVIRONMENT.items() if environ.get(variable)
    }
    try:
        for layer in (environment, *layers):
            values = {
                _ALIASES.get(key, key): value
                for key, value in _section(layer).items()
                if value not in (None, "")
            }
            # An invite stands for the relay URL and token of its own layer, so a later
            # layer's explicit token still wins over it.
            if isinstance(values.get("invite"), str):
                relay, token = parse_invite_link(values.pop("invite"))
                values = {"relay_url": relay, "token": token, **values}
            merged.update(values)
        return SidecarSettings.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(to_camel(str(part)) for part in error["loc"]) or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"collab.{where}: {message}") from None
    except ValueError as exc:
        raise SettingsError(f"collab settings: {exc}") from None


def _section(layer: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Settings may come bare or under a ``collab`` key (didChangeConfiguration)."""
    if not layer:
        return {}
    inner = layer.get("collab")
    return inner if isinstance(inner, Mapping) else layer
