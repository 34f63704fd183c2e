"""Alembic migrations of the store; `newsletter db upgrade` runs them (see newsletter/schema.py)."""
