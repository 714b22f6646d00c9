"""workflows: runs, steps, approvals, executors

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import cristal.db.schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = cristal.db.schema.UTCDateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("owner_user_id", sa.Integer(), nullable=True),
        sa.Column("owner_email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("parent_run_id", sa.String(length=200), nullable=True),
        sa.Column("retry_of", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_workflow_runs_org_created", "workflow_runs", ["org_id", "created_at"])
    op.create_index("ix_workflow_runs_parent_run_id", "workflow_runs", ["parent_run_id"])
    op.create_table(
        "workflow_steps",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("step_id", sa.String(length=63), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=300), nullable=True),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["workflow_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step_id", "item_index", name="uq_workflow_steps_run_step_item"),
    )
    op.create_table(
        "workflow_approvals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("step_id", sa.String(length=63), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("owner_email", sa.String(length=320), nullable=False),
        sa.Column("workflow_name", sa.String(length=200), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("on_timeout", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_at", UTC, nullable=False),
        sa.Column("deadline", UTC, nullable=True),
        sa.Column("decided_at", UTC, nullable=True),
        sa.Column("decided_by", sa.String(length=400), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["workflow_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step_id", name="uq_workflow_approvals_run_step"),
    )
    op.create_index("ix_workflow_approvals_org_status", "workflow_approvals", ["org_id", "status"])
    op.create_table(
        "workflow_executors",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("last_seen", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("workflow_executors")
    op.drop_index("ix_workflow_approvals_org_status", table_name="workflow_approvals")
    op.drop_table("workflow_approvals")
    op.drop_table("workflow_steps")
    op.drop_index("ix_workflow_runs_parent_run_id", table_name="workflow_runs")
    op.drop_index("ix_workflow_runs_org_created", table_name="workflow_runs")
    op.drop_table("workflow_runs")
