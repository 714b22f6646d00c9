"""conversation attachments: files attached to a conversation, kept as their parsed text

- ``conversation_attachments``: one row per attached file (a random uuid), with its parsed text; it goes with its
  conversation (ON DELETE CASCADE), and so with the conversation's owner and organization. Never indexed.

Revision ID: 0020_conversation_attachments
Revises: 0016_embedding_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_conversation_attachments"
down_revision = "0018_env_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_attachments",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("conversation_id", sa.String(length=36), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_conversation_attachments_conversation", "conversation_attachments",
                    ["conversation_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_conversation_attachments_conversation", table_name="conversation_attachments")
    op.drop_table("conversation_attachments")
