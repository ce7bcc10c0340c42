"""What the regional card holds and how it is encoded. Pure: no IO, no framework imports.

- :mod:`card_schema.en1545` — the generic EN 1545 bit codec that runs declarative field lists.
- :mod:`card_schema.records` — record layouts of the four applications, by record type name.
- :mod:`card_schema.layout` — the whole card: applications, files, access conditions, key roles.
- :mod:`card_schema.crypto` — AES-128 CMAC and NXP AN10922 key diversification.
"""
