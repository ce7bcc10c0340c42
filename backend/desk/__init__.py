"""The issuing desk: the agents' French web page and the desk job queue (docs/desk.md).

- :mod:`.models`: ``desk_jobs``, one row per card to write at a desk (issue, update, replace);
- :mod:`.content`: what goes on the card, as a plan of idempotent steps (card_schema encoding);
- :mod:`.service`: job life cycle (no FastAPI here);
- :mod:`.receipt`: the PDF receipt (reportlab);
- :mod:`.router`: ``/api/v1/desk/...`` (agents create and follow jobs, desk terminals take them)
  and ``/desk/`` (the page, its static files).
"""
