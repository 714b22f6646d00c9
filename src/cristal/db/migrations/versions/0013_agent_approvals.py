"""agent approvals: an approval's subject is a workflow run or an agent conversation

- ``workflow_approvals.subject``: ``workflow`` (every existing row) or ``conversation``. For a conversation,
  ``run_id`` holds the conversation's id, so the foreign key from ``run_id`` to ``workflow_runs`` goes; the row
  now goes with its organization (``org_id`` ON DELETE CASCADE, as 0008 made the rule), which is how it went
  before (with its run, which went with the organization).
- ``workflow_approvals.details``: what the approver is shown besides the message (the exact tool call).
- ``conversations.pending_approval`` / ``pending_call``: the approval a conversation waits for, and the call.

Revision ID: 0013_agent_approvals
Revises: 0015_web_sessions
"""

import sqlalchemy as sa
from alembic import op

import cristal.db.schema

revision = "0013_agent_approvals"
down_revision = "0011_mcp_servers"
branch_labels = None
depends_on = None

UTC = cristal.db.schema.UTCDateTime(timezone=True)
ORG_FK = "fk_workflow_approvals_org_id"


def _approvals_without_run_fk() -> sa.Table:
    """The table as 0003 made it, without its foreign key: SQLite's rebuild copies from this definition."""
    return sa.Table(
        "workflow_approvals", sa.MetaData(),
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
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step_id", name="uq_workflow_approvals_run_step"),
        sa.Index("ix_workflow_approvals_org_status", "org_id", "status"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    op.execute("DELETE FROM workflow_approvals WHERE org_id NOT IN (SELECT id FROM organizations)")
    if bind.dialect.name == "sqlite":
        batch = op.batch_alter_table("workflow_approvals", recreate="always", copy_from=_approvals_without_run_fk())
    else:
        for fk in sa.inspect(bind).get_foreign_keys("workflow_approvals"):
            name = fk.get("name")
            if fk["referred_table"] == "workflow_runs" and name:
                op.drop_constraint(name, "workflow_approvals", type_="foreignkey")
        batch = op.batch_alter_table("workflow_approvals")
    with batch as b:
        b.add_column(sa.Column("subject", sa.String(length=20), nullable=False, server_default="workflow"))
        b.add_column(sa.Column("details", sa.JSON(), nullable=True))
        b.create_foreign_key(ORG_FK, "organizations", ["org_id"], ["id"], ondelete="CASCADE")
    with op.batch_alter_table("workflow_approvals") as b:
        b.alter_column("subject", existing_type=sa.String(length=20), server_default=None)
    with op.batch_alter_table("conversations") as b:
        b.add_column(sa.Column("pending_approval", sa.String(length=40), nullable=True))
        b.add_column(sa.Column("pending_call", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as b:
        b.drop_column("pending_call")
        b.drop_column("pending_approval")
    op.execute("DELETE FROM workflow_approvals WHERE subject <> 'workflow'")
    with op.batch_alter_table("workflow_approvals") as b:
        b.drop_constraint(ORG_FK, type_="foreignkey")
        b.drop_column("details")
        b.drop_column("subject")
        b.create_foreign_key("workflow_approvals_run_id_fkey", "workflow_runs", ["run_id"], ["id"], ondelete="CASCADE")
