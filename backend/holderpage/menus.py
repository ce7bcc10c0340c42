"""The week's canteen menu of a school, for the holder's page (« Mon menu, mon école »).

The menus come from the same file the school kitchens publish to their tills (format
``regioncard.menus/1``, docs/canteen.md; the tills read it with ``terminal.canteen.menu``). The
backend never imports the terminal, so this module reads the few fields the page shows: per day,
per service, the dishes with their French course label, allergens and marks. A file that cannot be
read gives no menu and a logged reason, never an error page.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MENU_FORMAT = "regioncard.menus/1"
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
SERVICES = {
    "breakfast": "Petit déjeuner",
    "lunch": "Déjeuner",
    "snack": "Goûter",
    "dinner": "Dîner",
}
COURSES = {
    "entree": "Entrée",
    "plat": "Plat",
    "accompagnement": "Accompagnement",
    "laitage": "Fromage / laitage",
    "dessert": "Dessert",
    "boisson": "Boisson",
    "pain": "Pain",
}
ALLERGENS = {
    "gluten": "gluten",
    "crustaces": "crustacés",
    "oeufs": "œufs",
    "poissons": "poissons",
    "arachides": "arachides",
    "soja": "soja",
    "lait": "lait",
    "fruits_a_coque": "fruits à coque",
    "celeri": "céleri",
    "moutarde": "moutarde",
    "sesame": "sésame",
    "sulfites": "sulfites",
    "lupin": "lupin",
    "mollusques": "mollusques",
}


def _dish(raw: dict[str, Any]) -> dict[str, Any]:
    marks = [
        label
        for key, label in (("vegetarian", "végétarien"), ("local", "régional"), ("organic", "bio"))
        if raw.get(key)
    ]
    return {
        "course": COURSES.get(str(raw.get("course")), str(raw.get("course", ""))),
        "name": str(raw.get("name", "")),
        "allergens": [ALLERGENS.get(str(a), str(a)) for a in raw.get("allergens", [])],
        "marks": marks,
    }


def load_menus(path: Path | None) -> dict[str, Any] | None:
    """The menu file's schools, or ``None`` when unset, unreadable or of another format."""
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("canteen menu file %s unreadable: %s", path, exc)
        return None
    if not isinstance(doc, dict) or doc.get("format") != MENU_FORMAT:
        log.warning("canteen menu file %s is not %s", path, MENU_FORMAT)
        return None
    schools = doc.get("schools")
    return schools if isinstance(schools, dict) else None


def week_menu(path: Path | None, school_uai: str, today: date) -> dict[str, Any] | None:
    """The menu of ``school_uai`` from Monday to Friday of ``today``'s week.

    Returns:
        ``{"school_uai", "school_name", "days": [{"date", "weekday", "services": [{"service",
        "label", "dishes": [...]}]}]}``, or ``None`` when no menu is published for that school.
    """
    schools = load_menus(path)
    school = (schools or {}).get(school_uai)
    if not isinstance(school, dict):
        return None
    week = school.get("week") or {}
    dated = school.get("dates") or {}
    monday = today - timedelta(days=today.weekday())
    days = []
    for offset in range(5):
        day = monday + timedelta(days=offset)
        services = dated.get(day.isoformat()) or week.get(WEEKDAYS[day.weekday()]) or {}
        days.append(
            {
                "date": day.isoformat(),
                "weekday": WEEKDAYS[day.weekday()],
                "services": [
                    {
                        "service": name,
                        "label": SERVICES[name],
                        "dishes": [_dish(d) for d in services.get(name, []) if isinstance(d, dict)],
                    }
                    for name in SERVICES
                    if services.get(name)
                ],
            }
        )
    return {
        "school_uai": school_uai,
        "school_name": str(school.get("name", school_uai)),
        "days": days,
    }
