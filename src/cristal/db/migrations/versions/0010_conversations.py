"""conversations: stored per user, with their messages, and a retention per organization

- ``conversations``: one row per conversation (a random uuid), owned by one user of one organization; removed
  with its organization or its owner (ON DELETE CASCADE), as 0008 made the rule for everything an organization
  owns. Its id is a uuid, never a sequence, so no id is reused.
- ``conversation_messages`` go with their conversation.
- ``organizations.conversation_retention_days``: days a conversation is kept after its last turn (NULL: kept).

Revision ID: 0010_conversations
Revises: 0009_agents
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_conversations"
down_revision = "0009_agents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("conversation_retention_days", sa.Integer(), nullable=True))
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_email", sa.String(length=320), nullable=False),
        sa.Column("agent_slug", sa.String(length=63), nullable=False),
        sa.Column("agent_version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_conversations_org_user", "conversations", ["org_id", "user_id", "updated_at"])
    op.create_index("ix_conversations_org_updated", "conversations", ["org_id", "updated_at"])
    op.create_table(
        "conversation_messages",
        sa.Column("conversation_id", sa.String(length=36), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("tool_calls", sa.JSON(), nullable=True),
        sa.Column("citations", sa.JSON(), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("conversation_messages")
    op.drop_index("ix_conversations_org_updated", table_name="conversations")
    op.drop_index("ix_conversations_org_user", table_name="conversations")
    op.drop_table("conversations")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("conversation_retention_days")
