"""training environments: stored rollouts with their provenance (``cristal env run --store``, ``cristal env export``)

- ``env_rollouts``: one rollout of an environment: the batch it ran in, environment id, task, family, seed,
  policy and model, the policy model's tokens, reward, steps, time, whether it ended on its own, its error, the
  reward's details, and the conversation (OpenAI chat messages) with the tools' JSON schemas.

Revision ID: 0018_env_rollouts
Revises: 0015_web_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_env_rollouts"
down_revision = "0016_embedding_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "env_rollouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("batch", sa.String(length=40), nullable=False, index=True),
        sa.Column("env_id", sa.String(length=200), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("policy", sa.String(length=500), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("terminated", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_env_rollouts_env_reward", "env_rollouts", ["env_id", "reward"])


def downgrade() -> None:
    op.drop_index("ix_env_rollouts_env_reward", table_name="env_rollouts")
    op.drop_table("env_rollouts")
