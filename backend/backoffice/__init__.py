"""The back office: a French page for supervisors and auditors (docs/back-office.md)."""
