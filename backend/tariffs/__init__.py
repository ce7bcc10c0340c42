"""Tariff tables: published by supervisors, versioned, signed in the HSM, fetched by terminals."""
