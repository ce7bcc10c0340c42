"""The emulated regional card: APDU parsing, card image, secure sessions, command dispatch."""
