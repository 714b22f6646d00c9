"""Alembic environment: runs on the connection that ``Database.upgrade`` hands over."""

from alembic import context

# Imported for their side effect: every layer's tables join Base.metadata, so autogenerate and the schema test see
# the whole schema. (ruff counts the three lines as one unused name, `cristal`, and reports only the last.)
import cristal.knowledge.schema
import cristal.research.schema
import cristal.workflows.schema  # noqa: F401
from cristal.db.schema import Base, include_in_schema_comparison

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    include_name=include_in_schema_comparison,
)
with context.begin_transaction():
    context.run_migrations()
