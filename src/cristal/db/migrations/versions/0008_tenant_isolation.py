"""tenant isolation: ids are never reused, and everything an organization owns goes with it

- On SQLite the tables whose ids are named outside a foreign key (organizations,
  users, groups, API keys, sources, documents, chunks, deployments, usage rows,
  step slots) are rebuilt with AUTOINCREMENT, and their sequences start above
  every id still named anywhere (audit records, usage rows, runs...), so no id
  of a removed row is handed out again. PostgreSQL sequences never reuse ids.
- ``index_state``, ``documents``, ``chunks``, ``llm_usage`` and
  ``workflow_step_slots`` reference their organization with ON DELETE
  CASCADE: removing an organization removes them, whatever code removes it.
- ``index_state.token``: a random version, new on every index change, that
  in-process caches compare (a counter could repeat for a new organization).
- What organizations removed before this revision left behind (index state,
  usage rows, step slots, embeddings no chunk uses) is deleted.

``Database.upgrade`` runs SQLite migrations with foreign keys off: rebuilding
a table drops it, and with them on that would cascade-delete its children.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Tables whose org_id gains ON DELETE CASCADE.
ORG_OWNED = ("index_state", "documents", "chunks", "llm_usage", "workflow_step_slots")
# SQLite tables rebuilt with AUTOINCREMENT.
NEVER_REUSED = (
    "organizations", "users", "groups", "api_keys", "sources", "documents", "chunks",
    "workflow_deployments", "llm_usage", "workflow_step_slots",
)
# Ids named outside the table itself: the sequence must start above these too.
NAMED_ELSEWHERE = {
    "organizations": [("audit_records", "org_id"), ("llm_usage", "org_id"), ("index_state", "org_id"),
                      ("documents", "org_id"), ("chunks", "org_id"), ("workflow_approvals", "org_id"),
                      ("workflow_step_slots", "org_id")],
    "users": [("workflow_runs", "owner_user_id"), ("workflow_deployments", "deployed_by_user_id"), ("llm_usage", "user_id")],
    "workflow_deployments": [("workflow_runs", "deployment_id")],
}
CHUNK_TRIGGERS = (
    "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunk_fts(rowid, terms) VALUES (new.id, new.terms); "
    "INSERT INTO chunk_tri(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunk_fts(chunk_fts, rowid, terms) VALUES ('delete', old.id, old.terms); "
    "INSERT INTO chunk_tri(chunk_tri, rowid, text) VALUES ('delete', old.id, old.text); END",
)


def _fk(table: str) -> str:
    return f"fk_{table}_org_id"


def _highest_ids(bind: sa.engine.Connection) -> dict[str, int]:
    """Per rebuilt table, the highest id it or any other table names (read before leftovers are deleted)."""
    highest = {}
    for table in NEVER_REUSED:
        sources = [(table, "id"), *NAMED_ELSEWHERE.get(table, [])]
        highest[table] = max(bind.execute(sa.text(f"SELECT coalesce(max({column}), 0) FROM {name}")).scalar() or 0
                             for name, column in sources)
    return highest


def _delete_leftovers() -> None:
    for table in ORG_OWNED:
        # By statement, so the keyword index triggers see every deleted chunk.
        op.execute(f"DELETE FROM {table} WHERE org_id NOT IN (SELECT id FROM organizations)")
    op.execute("DELETE FROM embeddings WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE chunks.embed_hash = embeddings.content_hash)")


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    highest = _highest_ids(bind) if sqlite else {}
    _delete_leftovers()

    with op.batch_alter_table("index_state") as batch:
        batch.add_column(sa.Column("token", sa.String(length=32), nullable=True))
    random_hex = "lower(hex(randomblob(16)))" if sqlite else "md5(random()::text || clock_timestamp()::text)"
    op.execute(f"UPDATE index_state SET token = {random_hex}")
    with op.batch_alter_table("index_state") as batch:
        batch.alter_column("token", existing_type=sa.String(length=32), nullable=False)

    if not sqlite:
        for table in ORG_OWNED:
            op.create_foreign_key(_fk(table), table, "organizations", ["org_id"], ["id"], ondelete="CASCADE")
        return

    with op.batch_alter_table("index_state", recreate="always") as batch:
        batch.create_foreign_key(_fk("index_state"), "organizations", ["org_id"], ["id"], ondelete="CASCADE")
    for table in NEVER_REUSED:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}) as batch:
            if table in ORG_OWNED:
                batch.create_foreign_key(_fk(table), "organizations", ["org_id"], ["id"], ondelete="CASCADE")
        # Copying kept every id; the sequence starts above the highest one ever named.
        op.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t").bindparams(t=table))
        op.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :seq)").bindparams(t=table, seq=highest[table]))
    # Rebuilding ``chunks`` dropped the triggers that keep the keyword index in step (its rowids are unchanged).
    for statement in CHUNK_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    # AUTOINCREMENT stays on SQLite: no earlier code relies on ids being reused.
    for table in ORG_OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_fk(table), type_="foreignkey")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS chunks_ai")
        op.execute("DROP TRIGGER IF EXISTS chunks_ad")
        for statement in CHUNK_TRIGGERS:
            op.execute(statement)
    with op.batch_alter_table("index_state") as batch:
        batch.drop_column("token")
