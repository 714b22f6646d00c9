"""agent_turns: one row per agent turn (any way in) with its counts, usage and the owner's thumbs up or down

- ``agent_turns``: agent and version, the way in (``conversation``, ``api``, ``workflow``), the conversation and
  turn when stored, messages, tool calls, tool errors, whether the turn failed, tokens, cost, and ``rating``
  (+1/-1, set by the conversation's owner). Counts only, no content: the row stays when its conversation is
  deleted or purged, and goes with its agent or organization (ON DELETE CASCADE, as 0008 made the rule).

Revision ID: 0012_agent_feedback
Revises: 0010_conversations
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_agent_feedback"
down_revision = "0010_conversations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_turns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agent_version", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=True),
        sa.Column("turn", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("tool_calls", sa.Integer(), nullable=False),
        sa.Column("tool_errors", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_agent_turns_agent_created", "agent_turns", ["agent_id", "created_at"])
    op.create_index("ix_agent_turns_conversation", "agent_turns", ["conversation_id", "turn"])


def downgrade() -> None:
    op.drop_index("ix_agent_turns_conversation", table_name="agent_turns")
    op.drop_index("ix_agent_turns_agent_created", table_name="agent_turns")
    op.drop_table("agent_turns")
