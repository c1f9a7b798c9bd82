"""The one client of the relay protocol: the sidecar, the CLI and agents use it."""

from collab_lsp.client.backoff import Backoff
from collab_lsp.client.client import ClientState, RelayClient, RelayError

__all__ = ["Backoff", "ClientState", "RelayClient", "RelayError"]
