"""Reconciliation and clearing: reports per card, terminal, school/funder, operator; period close.

- :mod:`backend.reconciliation.models`: clearing periods and their settlements.
- :mod:`backend.reconciliation.service`: reports and ``close_period``.
- :mod:`backend.reconciliation.router`: ``/api/v1/reconciliation/...`` (supervisors, auditors).
"""
