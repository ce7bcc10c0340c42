"""The upload wire format between terminals and backend: ``regioncard.batch/1``.

Pure (no IO): the terminal's journal builds and signs batches with it, the backend parses and
verifies them with the same code, so the two sides cannot drift. See ``docs/batch-format.md``.

- :mod:`card_schema.uploads.records`: transaction intents and decided records, canonical JSON.
- :mod:`card_schema.uploads.batch`: batches, their Ed25519 signature, acknowledgements.
- :mod:`card_schema.uploads.counters`: the card transaction counter counts down; session order.
"""
