"""Alembic environment: runs on the connection that ``Database.upgrade`` hands over."""

from alembic import context

from cristal.db.schema import Base, include_in_schema_comparison

# Every layer's tables, so autogenerate and the schema test see the whole schema.
import cristal.knowledge.schema  # noqa: E402,F401
import cristal.research.schema  # noqa: E402,F401
import cristal.workflows.schema  # noqa: E402,F401

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    include_name=include_in_schema_comparison,
)
with context.begin_transaction():
    context.run_migrations()
