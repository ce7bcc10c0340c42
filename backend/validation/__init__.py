"""The validation loop: stored upload batches -> verified, deduplicated, chained, posted taps.

- :mod:`backend.validation.models`: taps, anomalies, deny candidates, card and terminal states,
  gaps, and the small revenue tables (station -> operator, product -> trip value).
- :mod:`backend.validation.providers`: the protocols the loop depends on (SAM trace keys, card
  pseudonyms, terminal keys) and in-memory implementations for tests and the bench.
- :mod:`backend.validation.loop`: :class:`~backend.validation.loop.ValidationLoop`.

Pipeline, rules and figures: ``docs/validation-loop.md``.
"""
