"""agents: custom agent definitions, their published versions and their shares

- ``agents``: one row per agent (slug unique per organization), its draft and the published version users get;
  removed with its organization (ON DELETE CASCADE), ids never reused (AUTOINCREMENT on SQLite), as 0008 made
  the rule for every table whose ids are named outside it (audit records name agents).
- ``agent_versions`` and ``agent_shares`` go with their agent.
- ``organizations.agents_members_share_org``: whether members may share an agent organization-wide.

Revision ID: 0009_agents
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_agents"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("agents_members_share_org", sa.Boolean(), nullable=False, server_default="0"))
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_by_email", sa.String(length=320), nullable=False),
        sa.Column("draft", sa.JSON(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("org_id", "slug", name="uq_agents_org_slug"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_agents_org_id", "agents", ["org_id"])
    op.create_table(
        "agent_versions",
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("published_by_email", sa.String(length=320), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_table(
        "agent_shares",
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("grantee", sa.String(length=400), primary_key=True),
        sa.Column("level", sa.String(length=10), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_shares")
    op.drop_table("agent_versions")
    op.drop_index("ix_agents_org_id", table_name="agents")
    op.drop_table("agents")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("agents_members_share_org")
