"""Terminals: the Calypso transaction engine, gate validator, canteen till, inspector, offline journal."""
