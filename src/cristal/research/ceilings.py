"""The most one research run may spend, whoever starts it (a workflow step, the CLI, the HTTP API)."""

RESEARCH_MAX_TOKENS = 1_000_000
RESEARCH_MAX_SECONDS = 3600.0
