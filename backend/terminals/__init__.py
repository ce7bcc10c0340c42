"""Terminal registry: devices, their bearer credentials, Ed25519 upload keys and SAM serials."""
