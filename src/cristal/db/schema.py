"""ORM tables of the spine: organizations, users, groups, API keys, web sign-in and sessions, audit, LLM usage; custom
agents; training environments' rollouts.

Later layers add their own tables in their own modules on the same ``Base``;
every table change comes with an Alembic migration in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import DateTime, TypeDecorator

# SQLite has no BIGINT autoincrement; the audit and usage tables grow forever,
# so they are BIGINT on PostgreSQL and INTEGER (64-bit anyway) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


# Ids are never reused: on SQLite a plain INTEGER PRIMARY KEY hands a deleted
# row's id to the next insert, so a new organization (user, source, chunk...)
# could inherit what still names the old one -- a cached index, an audit
# trail, a stored reference. AUTOINCREMENT makes SQLite never hand an id out
# twice; PostgreSQL sequences never do. Tables whose ids are referenced
# outside a foreign key set this in their ``__table_args__``.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


# Database objects that migrations create by hand (FTS5 tables, expression
# indexes) and the ORM does not map; schema comparison ignores them.
UNMAPPED_PREFIXES = ("chunk_fts", "chunk_tri", "ix_chunks_terms_fts", "ix_chunks_text_trgm")


def include_in_schema_comparison(name: str | None, type_: str, parent_names: object) -> bool:
    return not (name or "").startswith(UNMAPPED_PREFIXES)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Organization(Base):
    """A tenant. Every row it owns references it with ``ON DELETE CASCADE``, so removing it removes them."""

    __tablename__ = "organizations"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Per-organization model settings; NULL falls back to the process settings.
    llm_base_url: Mapped[str | None] = mapped_column(String(500))
    llm_model: Mapped[str | None] = mapped_column(String(200))
    # The *name* of an environment variable holding the key: secrets stay out of the database.
    llm_api_key_env: Mapped[str | None] = mapped_column(String(100))
    llm_monthly_budget_usd: Mapped[float | None] = mapped_column(Float)
    # Web domains the Operator may visit for this organization; NULL means no organization-wide limit.
    operator_allowed_domains: Mapped[list | None] = mapped_column(JSON)
    # Whether members (not only admins) may share an agent with the whole organization.
    agents_members_share_org: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Days a conversation is kept after its last turn (``cristal conversation purge``); NULL keeps them.
    conversation_retention_days: Mapped[int | None] = mapped_column(Integer)

    users: Mapped[list[User]] = relationship(back_populates="org", cascade="all, delete-orphan")
    groups: Mapped[list[Group]] = relationship(back_populates="org", cascade="all, delete-orphan")


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("org_id", "email", name="uq_users_org_email"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20), default="member")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    org: Mapped[Organization] = relationship(back_populates="users")
    groups: Mapped[list[Group]] = relationship(secondary="group_members", back_populates="members")


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_groups_org_name"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    org: Mapped[Organization] = relationship(back_populates="groups")
    members: Mapped[list[User]] = relationship(secondary="group_members", back_populates="groups")


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The public prefix finds the row; only a SHA-256 of the whole key is kept.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditRecord(Base):
    """One authorization decision or admin change. Append-only (triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_org", "org_slug", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # No foreign keys: the record must outlive the organization and user it names.
    org_id: Mapped[int | None] = mapped_column(Integer)
    org_slug: Mapped[str | None] = mapped_column(String(63))
    actor: Mapped[str] = mapped_column(String(400))
    action: Mapped[str] = mapped_column(String(100))
    resource: Mapped[str] = mapped_column(String(500))
    decision: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    details: Mapped[dict | None] = mapped_column(JSON)


class AuditWindow(Base):
    """How often one kind of refusal happened in one time window (``cristal.audit.throttle``).

    What an outsider can repeat at will (a wrong API key, asking for runs that
    are not theirs) is recorded only so many times per window; this row counts
    the rest, so that one summary record can say how many were left out. It
    lives in the database so that every server process counts together. Rows
    are deleted once their window is over and summarized; audit records never are.
    """

    __tablename__ = "audit_windows"
    __table_args__ = (Index("ix_audit_windows_open", "summarized", "window_end"),)

    bucket: Mapped[str] = mapped_column(String(300), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # Unix seconds
    window_end: Mapped[int] = mapped_column(BigInteger)
    allowed: Mapped[int] = mapped_column(Integer)  # records written in full in this window; the rest are counted
    count: Mapped[int] = mapped_column(Integer)
    summarized: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the summary record says: where it goes and whom it names.
    org_id: Mapped[int | None] = mapped_column(Integer)
    org_slug: Mapped[str | None] = mapped_column(String(63))
    actor: Mapped[str] = mapped_column(String(400))
    action: Mapped[str] = mapped_column(String(100))
    resource: Mapped[str] = mapped_column(String(500))
    scope: Mapped[str] = mapped_column(String(100))  # "per source address", ...: what the limit applies to


class LLMUsage(Base):
    """One metered call to a model endpoint."""

    __tablename__ = "llm_usage"
    __table_args__ = (Index("ix_llm_usage_org_at", "org_id", "at"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(400))
    kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(200))
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))


class Agent(Base):
    """A custom agent: its draft definition and which of its versions users get."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("org_id", "slug", name="uq_agents_org_slug"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(63))
    # The creator's id and e-mail: the id decides ownership, the e-mail outlives the user for display.
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_email: Mapped[str] = mapped_column(String(320))
    draft: Mapped[dict] = mapped_column(JSON)
    published_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgentVersion(Base):
    """A published version of an agent: never changed once written."""

    __tablename__ = "agent_versions"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict] = mapped_column(JSON)
    published_by_email: Mapped[str] = mapped_column(String(320))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")


class AgentShare(Base):
    """A grant of ``use`` or ``edit`` of one agent to ``user:EMAIL``, ``group:NAME`` or ``org``."""

    __tablename__ = "agent_shares"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    grantee: Mapped[str] = mapped_column(String(400), primary_key=True)
    level: Mapped[str] = mapped_column(String(10))


class Conversation(Base):
    """A conversation of one employee with one agent: private to its owner (not even an admin reads it)."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_org_user", "org_id", "user_id", "updated_at"),
                      Index("ix_conversations_org_updated", "org_id", "updated_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a random uuid: ids are never guessed or reused
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # The owner's id decides who may read it; a removed user's conversations go with them.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_email: Mapped[str] = mapped_column(String(320))
    agent_slug: Mapped[str] = mapped_column(String(63))
    agent_version: Mapped[int] = mapped_column(Integer)  # the version it started with, kept when continued
    title: Mapped[str] = mapped_column(String(200))
    turns: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A write the model asked for that waits for a person (``agents.approvals``): the approval's id and the exact
    # call. ``pending_approval`` is cleared by a compare-and-set when a turn takes the decided call up, so two
    # continuations at once cannot both run it.
    pending_approval: Mapped[str | None] = mapped_column(String(40))
    pending_call: Mapped[dict | None] = mapped_column(JSON)


class AgentTurn(Base):
    """One finished (or failed) turn of an agent, by any way in: what ``cristal agent stats`` counts.

    Counts and usage only, never content: it outlives the conversation it belongs to (a deleted or purged
    conversation still counted), and goes with its agent or organization. A stored conversation's turn
    carries its owner's thumbs up (+1) or down (-1).
    """

    __tablename__ = "agent_turns"
    __table_args__ = (Index("ix_agent_turns_agent_created", "agent_id", "created_at"),
                      Index("ix_agent_turns_conversation", "conversation_id", "turn"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    agent_version: Mapped[int] = mapped_column(Integer)
    via: Mapped[str] = mapped_column(String(20))  # conversation, api, workflow
    # No foreign key: the counts stay when the conversation is deleted (they say nothing of what was said).
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    turn: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    messages: Mapped[int] = mapped_column(Integer, default=0)
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    tool_errors: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    rating: Mapped[int | None] = mapped_column(Integer)  # +1 thumbs up, -1 down, by the conversation's owner
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConversationMessage(Base):
    """One OpenAI-format message of a conversation; a turn's answer carries the turn's tool calls, citations and usage."""

    __tablename__ = "conversation_messages"

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    turn: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[dict] = mapped_column(JSON)  # the message as the model saw it
    tool_calls: Mapped[list | None] = mapped_column(JSON)  # [{name, arguments, status, ...}] on a turn's answer
    citations: Mapped[list | None] = mapped_column(JSON)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConversationAttachment(Base):
    """A file attached to a conversation, kept as its parsed text: read by the model in that conversation only.

    Never indexed into the organization's knowledge; it goes with its conversation (ON DELETE CASCADE).
    """

    __tablename__ = "conversation_attachments"
    __table_args__ = (Index("ix_conversation_attachments_conversation", "conversation_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)  # its text was cut at attachment_max_chars
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OidcProvider(Base):
    """An organization's OpenID Connect provider: who signs its people in to the web app (at most one each)."""

    __tablename__ = "oidc_providers"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True,
                                        autoincrement=False)
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(200))
    # The *name* of an environment variable holding the client secret; NULL for a public client (PKCE alone).
    client_secret_env: Mapped[str | None] = mapped_column(String(100))
    # The id token claim listing the person's groups; NULL leaves group membership to `cristal group`.
    groups_claim: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebSignIn(Base):
    """A sign-in under way: sent to the provider, not yet back. Used once (``used_at``), void after ``expires_at``."""

    __tablename__ = "web_sign_ins"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # SHA-256 of the random value in the browser's sign-in cookie: the answer must come back to the same browser.
    binding_hash: Mapped[str] = mapped_column(String(64))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # kept until expiry: a replay is recorded as this org's


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "web_sessions"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))  # the provider's ``sub`` for the person (kept for the audit trail)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class McpServerEntry(Base):
    """An MCP server an org admin registered for the organization's agents, and which of its tools they may use.

    Credentials are never stored: ``env`` and ``headers`` map what the server sees to the *names* of the
    variables (``CRISTAL_ORG_KEY_...``) their values are read from when a connection opens.
    """

    __tablename__ = "mcp_servers"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_mcp_servers_org_name"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    transport: Mapped[str] = mapped_column(String(10))  # stdio | http
    command: Mapped[str | None] = mapped_column(Text)
    args: Mapped[list] = mapped_column(JSON)
    env: Mapped[dict] = mapped_column(JSON)
    url: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict] = mapped_column(JSON)
    # The tools agents may use: name -> {"effect": read|write|destructive|null (null counts as write),
    # "description", "input_schema"} as the server described them when the admin allowed them.
    tools: Mapped[dict] = mapped_column(JSON)
    created_by_email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EnvRollout(Base):
    """One rollout of a training environment, with its provenance: which environment, task and seed, which policy
    (and model), the reward and why, and the conversation as OpenAI chat messages with the tools' schemas.
    ``batch`` groups the rollouts of one ``cristal env run``/``eval``. Environments are the installation's (built on
    the sample company), so a rollout belongs to no organization."""

    __tablename__ = "env_rollouts"
    __table_args__ = (Index("ix_env_rollouts_env_reward", "env_id", "reward"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch: Mapped[str] = mapped_column(String(40), index=True)
    env_id: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(100))
    family: Mapped[str] = mapped_column(String(32))
    seed: Mapped[int] = mapped_column(BigInteger)
    policy: Mapped[str] = mapped_column(String(500))
    model: Mapped[str | None] = mapped_column(String(200))
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reward: Mapped[float] = mapped_column(Float)
    steps: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    terminated: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSON)
    messages: Mapped[list] = mapped_column(JSON)
    tools: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
