"""mcp_servers: the MCP servers an org admin registered for the organization's agents, with their allowed tools

- one row per server (unique name per organization), removed with its organization (ON DELETE CASCADE);
- ``env`` and ``headers`` hold the *names* of the variables credentials are read from, never the values;
- ``tools``: the tools agents may use, each with its effect class (null counts as write) and its schema.

Revision ID: 0011_mcp_servers
Revises: 0015_web_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_mcp_servers"
down_revision = "0015_web_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("transport", sa.String(length=10), nullable=False),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("created_by_email", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("org_id", "name", name="uq_mcp_servers_org_name"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mcp_servers_org_id", "mcp_servers", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_mcp_servers_org_id", table_name="mcp_servers")
    op.drop_table("mcp_servers")
