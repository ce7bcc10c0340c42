"""Alembic migrations of the backend (revision files under ``versions/``)."""
