"""Desk personalisation: per-card keys wrapped for the desk SAM, initial records encoded."""
