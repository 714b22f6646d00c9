"""embedding indexes: which model made each organization's dense index, and which one is being built

- ``embedding_indexes``: one row per dense index of an organization (bundled model or an OpenAI-compatible
  endpoint, its model name, dimension and state). Organizations without a row keep using the bundled model,
  so existing vectors stay valid without a data migration.

Revision ID: 0016_embedding_indexes
Revises: 0015_web_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_embedding_indexes"
down_revision = "0013_agent_approvals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embedding_indexes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("backend", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=True),
        sa.Column("api_key_env", sa.String(length=100), nullable=True),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_embedding_indexes_org_state", "embedding_indexes", ["org_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_embedding_indexes_org_state", table_name="embedding_indexes")
    op.drop_table("embedding_indexes")
