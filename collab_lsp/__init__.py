"""collab-lsp: real-time collaboration for coding sessions, in every editor."""

__all__ = ["__version__"]

__version__ = "0.1.0"
