"""workflows: deployments (named, scheduled workflows), per-organization step limits, step slots

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import cristal.db.schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC = cristal.db.schema.UTCDateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(sa.Column("deployment_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(length=300), nullable=True))
        batch.create_index("ix_workflow_runs_deployment_id", ["deployment_id"])
    op.create_table(
        "workflow_deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("workflow", sa.String(length=200), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.String(length=120), nullable=True),
        sa.Column("deployed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("deployed_by_email", sa.String(length=320), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("next_fire_at", UTC, nullable=True),
        sa.Column("last_fired_at", UTC, nullable=True),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_workflow_deployments_org_name"),
    )
    op.create_index("ix_workflow_deployments_next_fire", "workflow_deployments", ["next_fire_at"])
    op.create_table(
        "workflow_limits",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=True),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("rate_period", sa.Float(), nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", "kind"),
    )
    op.create_table(
        "workflow_step_slots",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("executor_id", sa.String(length=100), nullable=False),
        sa.Column("step_key", sa.String(length=300), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("released_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_workflow_step_slots_org_kind_started", "workflow_step_slots", ["org_id", "kind", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_workflow_step_slots_org_kind_started", table_name="workflow_step_slots")
    op.drop_table("workflow_step_slots")
    op.drop_table("workflow_limits")
    op.drop_index("ix_workflow_deployments_next_fire", table_name="workflow_deployments")
    op.drop_table("workflow_deployments")
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_index("ix_workflow_runs_deployment_id")
        batch.drop_column("idempotency_key")
        batch.drop_column("deployment_id")
