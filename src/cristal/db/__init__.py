"""Storage: the SQLAlchemy engine, the ORM tables and the Alembic migrations."""

from cristal.db.engine import Database, normalize_url

__all__ = ["Database", "normalize_url"]
