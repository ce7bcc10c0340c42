"""Idempotency keys of the selling endpoints (``Idempotency-Key`` header)."""
