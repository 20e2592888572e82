"""The database's own failures, named by the store so that callers above it catch them without SQLAlchemy."""
from sqlalchemy.exc import OperationalError, SQLAlchemyError

StoreError = SQLAlchemyError  # anything the database raised: unreachable, damaged, not a database, locked
StoreUnreachable = OperationalError  # the database could not be reached or opened

__all__ = ["StoreError", "StoreUnreachable"]
