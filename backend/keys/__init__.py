"""The backend's keys, held in a PKCS#11 token (an HSM; SoftHSM2 in tests and the demo)."""
