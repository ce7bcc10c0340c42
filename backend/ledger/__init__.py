"""The double-entry ledger: every money movement posts lines that sum to zero per entry.

- :mod:`backend.ledger.models`: ``ledger_entries``.
- :mod:`backend.ledger.accounts`: account names and the posting rules of a card session.
- :mod:`backend.ledger.service`: balance checks, corrections (new entries, never deletes).
"""
