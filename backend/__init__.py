"""Backend: issuance, uploads, validation loop, reconciliation, deny-lists, keys (PKCS#11), privacy."""
