"""The collab-lsp sidecar: a language server that joins an editor to a session."""
