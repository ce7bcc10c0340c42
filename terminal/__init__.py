"""Terminals: Calypso transaction engine, gate, canteen till, inspector, offline journal."""
