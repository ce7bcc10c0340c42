"""Emulated card and SAM behind the real PC/SC and nfcpy stacks, emulated gate peripheral, device profiles."""
