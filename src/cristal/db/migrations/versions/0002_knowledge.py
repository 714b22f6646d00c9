"""knowledge: sources, documents, access rules, chunks, embeddings, keyword index

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import cristal.db.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = cristal.db.schema.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("acl", sa.JSON(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_sync_at", UTC, nullable=True),
        sa.Column("last_sync", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_sources_org_name"),
    )
    op.create_index("ix_sources_org_id", "sources", ["org_id"])
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=1000), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("acl", sa.JSON(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("indexed_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "external_id", name="uq_documents_source_external"),
    )
    op.create_index("ix_documents_org_id", "documents", ["org_id"])
    op.create_index("ix_documents_source_id", "documents", ["source_id"])
    op.create_table(
        "document_access",
        sa.Column("doc_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=400), nullable=False),
        sa.ForeignKeyConstraint(["doc_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("doc_id", "rule"),
    )
    op.create_index("ix_document_access_rule", "document_access", ["rule", "doc_id"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("doc_id", sa.Integer(), nullable=False),
        sa.Column("ord", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("embed_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["doc_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_chunks_org_doc", "chunks", ["org_id", "doc_id"])
    op.create_index("ix_chunks_doc_id", "chunks", ["doc_id"])
    op.create_index("ix_chunks_embed_hash", "chunks", ["embed_hash"])
    op.create_table(
        "embeddings",
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("content_hash", "model"),
    )
    op.create_table(
        "index_state",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id"),
    )

    if op.get_bind().dialect.name == "sqlite":
        # External-content FTS5 tables: the text lives once, in ``chunks``;
        # triggers keep the indexes in the same transaction as the rows.
        op.execute("CREATE VIRTUAL TABLE chunk_fts USING fts5(terms, content='chunks', content_rowid='id', "
                   "tokenize='unicode61 remove_diacritics 0')")
        op.execute("CREATE VIRTUAL TABLE chunk_tri USING fts5(text, content='chunks', content_rowid='id', tokenize='trigram')")
        op.execute(
            "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN "
            "INSERT INTO chunk_fts(rowid, terms) VALUES (new.id, new.terms); "
            "INSERT INTO chunk_tri(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN "
            "INSERT INTO chunk_fts(chunk_fts, rowid, terms) VALUES ('delete', old.id, old.terms); "
            "INSERT INTO chunk_tri(chunk_tri, rowid, text) VALUES ('delete', old.id, old.text); END"
        )
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_chunks_terms_fts ON chunks USING gin (to_tsvector('simple', terms))")
        op.execute("CREATE INDEX ix_chunks_text_trgm ON chunks USING gin (text gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS chunks_ai")
        op.execute("DROP TRIGGER IF EXISTS chunks_ad")
        op.execute("DROP TABLE IF EXISTS chunk_fts")
        op.execute("DROP TABLE IF EXISTS chunk_tri")
    for table in ("index_state", "embeddings", "chunks", "document_access", "documents", "sources"):
        op.drop_table(table)
