"""web sign-in: an OpenID Connect provider per organization, sign-ins under way, and browser sessions

- ``oidc_providers``: at most one per organization (its primary key is the organization): the issuer, the client
  id, the *name* of the environment variable holding the client secret (secrets stay out of the database, as with
  model keys) and the claim groups are read from.
- ``web_sign_ins``: a sign-in started and not yet finished: the hashes of its ``state`` and of the browser's binding
  cookie, its nonce and PKCE verifier; marked ``used_at`` when its answer comes (a state works once, and a replay is
  still known to be this organization's), deleted once past ``expires_at``.
- ``web_sessions``: a signed-in browser, found by the SHA-256 of its cookie; removed with its user or organization.

Revision ID: 0015_web_sessions
Revises: 0010_conversations
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_web_sessions"
down_revision = "0012_agent_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_providers",
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("client_secret_env", sa.String(length=100), nullable=True),
        sa.Column("groups_claim", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "web_sign_ins",
        sa.Column("state_hash", sa.String(length=64), primary_key=True),
        sa.Column("binding_hash", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("nonce", sa.String(length=100), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("web_sessions")
    op.drop_table("web_sign_ins")
    op.drop_table("oidc_providers")
