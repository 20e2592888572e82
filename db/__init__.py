"""The run store's schema (SQLAlchemy 2.0 typed models), engine setup and Alembic migrations."""
