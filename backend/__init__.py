"""Backend: issuance, uploads, validation loop, reconciliation, deny-lists, keys, privacy."""
