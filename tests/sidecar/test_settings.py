"""Where the sidecar's settings come from, and what it refuses."""

from __future__ import annotations

import pytest

from collab_lsp.protocol.links import invite_link
from collab_lsp.sidecar.settings import SettingsError, merge_settings

ENV = {"COLLAB_RELAY_URL": "ws://env:1", "COLLAB_TOKEN": "env-token", "COLLAB_NAME": "env"}


def test_initialization_options_win_over_the_environment() -> None:
    settings = merge_settings({"relayUrl": "ws://init:2", "token": "init"}, None, environ=ENV)
    assert (settings.relay_url, settings.token, settings.name) == ("ws://init:2", "init", "env")


def test_configuration_changes_win_over_initialization_options() -> None:
    settings = merge_settings(
        {"relayUrl": "ws://init:2", "token": "init"},
        {"collab": {"token": "changed"}},
        environ={},
    )
    assert (settings.relay_url, settings.token) == ("ws://init:2", "changed")


def test_environment_alone_is_enough() -> None:
    settings = merge_settings(None, None, environ=ENV)
    assert settings.complete and settings.relay_url == "ws://env:1"


def test_an_invite_link_gives_relay_and_token() -> None:
    link = invite_link("http://relay.example:8765/ws/", "tok")
    settings = merge_settings({"invite": link}, environ={})
    assert (settings.relay_url, settings.token) == ("ws://relay.example:8765", "tok")


@pytest.mark.parametrize(
    ("layer", "named"),
    [
        ({"relayUrl": "ftp://nope"}, "ws://host:port"),
        ({"invite": "https://example.com/?token=x"}, "collab://join"),
        ({"logLevel": "LOUD"}, "collab.logLevel"),
    ],
)
def test_bad_settings_name_the_problem(layer: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as error:
        merge_settings(layer, environ={})
    assert named in str(error.value)


def test_an_explicit_token_wins_over_an_earlier_invite() -> None:
    link = invite_link("ws://relay:1", "invite-token")
    settings = merge_settings({"invite": link}, {"token": "personal"}, environ={})
    assert (settings.relay_url, settings.token) == ("ws://relay:1", "personal")
