"""Data files of the fare layer, shipped as package data (``*.json``).

- ``default_tariff.json``: the tariff table a terminal uses until the backend pushes a signed one.
  Example figures for a Hauts-de-France-like network (zones, products, prices); not the Region's
  official prices. Format: docs/tariffs.md.
"""
