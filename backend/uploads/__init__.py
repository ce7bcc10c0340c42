"""Uploads: terminals post signed batches (``docs/batch-format.md``), stored durably before the ack.

- :mod:`backend.uploads.models`: the ``upload_batches`` table (raw bytes, processed or not).
- :mod:`backend.uploads.service`: receive one batch (no FastAPI): verify, store, answer.
- :mod:`backend.uploads.router`: ``POST /api/v1/uploads``.
"""
