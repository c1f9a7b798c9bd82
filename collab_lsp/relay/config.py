"""Relay settings: defaults, then a TOML file, then ``COLLAB_RELAY_*`` variables, then flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from collab_lsp.protocol import limits

__all__ = ["ConfigError", "RelayConfig", "load_config"]

ENV_PREFIX = "COLLAB_RELAY_"


class ConfigError(Exception):
    """A setting is wrong; the message names it and says how to fix it."""


class RelayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    db: str = "collab-relay.db"
    database_url: str | None = Field(default=None, repr=False)
    database_schema: str | None = None
    redis_url: str | None = Field(default=None, repr=False)
    redis_prefix: str = Field(default="collab", pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")
    presence_expiry_seconds: float = Field(default=15.0, ge=1)
    # False: refuse to open a database whose schema is behind (`collab-relay migrate` applies it).
    auto_migrate: bool = True
    secret: str | None = Field(default=None, min_length=32)
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    commit_window_seconds: float = Field(default=0.004, ge=0, le=0.1)
    compression: bool = False
    public_url: str | None = None
    jwt_public_key_file: str | None = None
    jwks_url: str | None = None
    jwt_audience: str | None = None
    max_frame_bytes: int = Field(default=limits.MAX_FRAME_BYTES, ge=1024, le=16 * 1024 * 1024)
    durable_rate_per_minute: int = Field(default=limits.DURABLE_RATE_PER_MINUTE, ge=1)
    max_errors_per_minute: int = Field(default=limits.MAX_ERRORS_PER_MINUTE, ge=1)
    durable_backlog_limit: int = Field(default=limits.DURABLE_BACKLOG_LIMIT, ge=10)
    reconnect_grace_seconds: float = Field(default=limits.RECONNECT_GRACE_SECONDS, ge=0)
    cursor_interval_seconds: float = Field(default=limits.CURSOR_INTERVAL_SECONDS, ge=0)
    presence_interval_seconds: float = Field(default=limits.PRESENCE_INTERVAL_SECONDS, ge=0)
    idle_after_seconds: float = Field(default=limits.IDLE_AFTER_SECONDS, gt=0)
    away_after_seconds: float = Field(default=limits.AWAY_AFTER_SECONDS, gt=0)
    presence_sweep_seconds: float = Field(default=5.0, gt=0)
    join_timeout_seconds: float = Field(default=limits.JOIN_TIMEOUT_SECONDS, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _redis_needs_a_shared_store(self) -> RelayConfig:
        if self.redis_url and not self.database_url:
            raise ValueError(
                "redis_url is set but database_url is not: relays sharing Redis must share "
                "a PostgreSQL database too (a local SQLite file cannot be shared); set "
                "database_url (--database-url / COLLAB_RELAY_DATABASE_URL), or drop redis_url "
                "to run one relay on SQLite"
            )
        return self

    def ws_url(self, bound_port: int | None = None) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{bound_port or self.port}"


def load_config(
    *,
    file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RelayConfig:
    """Merge the layers and validate once, so an error names the setting and its source."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    file = file or environ.get(ENV_PREFIX + "CONFIG")
    if file:
        for key, value in _read_toml(file).items():
            merged[key] = value
            sources[key] = f"{file}: {key}"
    for name in RelayConfig.model_fields:
        variable = ENV_PREFIX + name.upper()
        if variable in environ:
            merged[name] = environ[variable]
            sources[name] = f"environment variable {variable}"
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key] = value
            sources[key] = f"--{key.replace('_', '-')}"
    try:
        return RelayConfig.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            key = str(error["loc"][0]) if error["loc"] else ""
            where = sources.get(key, key) or "configuration"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown setting; see `collab-relay serve --help` for the list"
            problems.append(f"{where}: {message}")
        raise ConfigError("invalid relay configuration:\n  " + "\n  ".join(problems)) from None


def _read_toml(file: str) -> dict[str, Any]:
    path = Path(file)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file!r} is not valid TOML: {exc}") from None
    # Settings may sit at the top level or under a [relay] table.
    relay = data.get("relay", data)
    if not isinstance(relay, dict):
        raise ConfigError(f"config file {file!r}: [relay] must be a table")
    return {key.replace("-", "_"): value for key, value in relay.items()}
