"""Emulated card and SAM behind the real PC/SC and nfcpy stacks, gate peripheral, profiles."""
