"""Holders: the people cards belong to (or an anonymous holder with no personal data at all)."""
