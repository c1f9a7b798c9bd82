"""Taking part in a session without an editor: the CLI and the MCP server for AI assistants."""
