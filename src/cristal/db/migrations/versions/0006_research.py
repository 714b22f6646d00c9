"""research: the checkpointed notes of research runs (so any worker on the database can resume one)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import cristal.db.schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC = cristal.db.schema.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "research_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(length=400), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("workflow_run_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_research_runs_org_created", "research_runs", ["org_id", "created_at"])
    op.create_index("ix_research_runs_workflow_run_id", "research_runs", ["workflow_run_id"])


def downgrade() -> None:
    op.drop_index("ix_research_runs_workflow_run_id", table_name="research_runs")
    op.drop_index("ix_research_runs_org_created", table_name="research_runs")
    op.drop_table("research_runs")
