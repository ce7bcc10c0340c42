"""The school canteen till (issue 4): Cursus canteen aid first, then the wallet; one meal a service.

- :mod:`terminal.canteen.model`: the card's records in the canteen's terms.
- :mod:`terminal.canteen.tariff`: service hours and meal prices (JSON file).
- :mod:`terminal.canteen.rules`: :func:`decide_meal`, pure.
- :mod:`terminal.canteen.menu`: today's menu per school (« Mon menu, mon école »).
- :mod:`terminal.canteen.till`: :class:`CanteenTill`, two secure sessions, journaled.
- :mod:`terminal.canteen.report`: the manager's daily report.
- :mod:`terminal.canteen.cli`: ``regioncard canteen``.

See ``docs/canteen.md``.
"""
