"""Custom agents: versioned definitions, sharing, the conversation loop over the action registry, MCP."""
