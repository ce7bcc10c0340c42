"""Today's menu, per school, from a local JSON file (« Mon menu, mon école »).

The programme's "My menu, my school" idea (``../shared/mission/programme-extracts.md``): the
menu of the pupil's canteen, shown on the till's screen and printable for families. The till
never fetches it from the network at lunch time: the school's kitchen publishes a file, the till
reads it at start. Format (``docs/canteen.md``): per school, a weekly cycle keyed by French
weekday names and optional dated menus that replace the cycle on a given day (a theme day, a
holiday menu), each service a list of dishes with the 14 regulated allergens flagged
(Regulation (EU) No 1169/2011, Annex II; France: décret 2015-447 for catering).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from terminal.canteen.model import MealService
from terminal.canteen.tariff import CanteenConfigError

DEFAULT_MENU_PATH = Path(__file__).resolve().parent / "data" / "menus.json"
MENU_FORMAT = "regioncard.menus/1"

# The 14 allergens of Regulation (EU) 1169/2011 Annex II: code -> French label.
ALLERGENS: dict[str, str] = {
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

COURSES: dict[str, str] = {
    "entree": "Entrée",
    "plat": "Plat",
    "accompagnement": "Accompagnement",
    "laitage": "Fromage / laitage",
    "dessert": "Dessert",
    "boisson": "Boisson",
    "pain": "Pain",
}

WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


@dataclass(frozen=True)
class Dish:
    """One dish of a menu.

    Attributes:
        course: ``entree``, ``plat``, ``accompagnement``, ``laitage``, ``dessert``...
        name: as the kitchen writes it.
        allergens: codes of :data:`ALLERGENS`.
        vegetarian: no meat nor fish (EGalim: at least one vegetarian menu a week).
        local: product of the region's producers (short supply chain).
        organic: organic farming (« bio »).
    """

    course: str
    name: str
    allergens: frozenset[str] = field(default_factory=frozenset)
    vegetarian: bool = False
    local: bool = False
    organic: bool = False

    def screen_line(self) -> str:
        """``Plat : Carbonnade flamande [régional] (allergènes : gluten, sulfites)``."""
        marks = [
            label
            for flag, label in (
                (self.vegetarian, "végétarien"),
                (self.local, "régional"),
                (self.organic, "bio"),
            )
            if flag
        ]
        line = f"{COURSES[self.course]} : {self.name}"
        if marks:
            line += f" [{', '.join(marks)}]"
        if self.allergens:
            labels = ", ".join(ALLERGENS[a] for a in sorted(self.allergens))
            line += f" (allergènes : {labels})"
        return line


@dataclass(frozen=True)
class Menu:
    """The menu of one service on one day in one school."""

    school_uai: str
    school_name: str
    day: date
    service: MealService
    dishes: tuple[Dish, ...]

    @property
    def allergens(self) -> frozenset[str]:
        """Every allergen of the menu."""
        return frozenset().union(*(d.allergens for d in self.dishes))

    def screen_lines(self) -> list[str]:
        """What the till's screen shows, in French."""
        weekday = WEEKDAYS[self.day.weekday()]
        title = f"Menu du {self.service.label} — {weekday} {self.day:%d/%m} — {self.school_name}"
        return [title, *(dish.screen_line() for dish in self.dishes)]


def _dish(obj: Any, where: str) -> Dish:
    if not isinstance(obj, dict):
        raise CanteenConfigError(f"{where}: a dish is a JSON object")
    unknown_keys = set(obj) - {"course", "name", "allergens", "vegetarian", "local", "organic"}
    if unknown_keys:
        raise CanteenConfigError(f"{where}: unknown fields {sorted(unknown_keys)}")
    course, name = obj.get("course"), obj.get("name")
    if course not in COURSES:
        raise CanteenConfigError(f"{where}: unknown course {course!r} (known: {sorted(COURSES)})")
    if not isinstance(name, str) or not name.strip():
        raise CanteenConfigError(f"{where}: a dish has a name")
    allergens = obj.get("allergens", [])
    if not isinstance(allergens, list) or not set(allergens) <= set(ALLERGENS):
        raise CanteenConfigError(f"{where}: allergens must be among {sorted(ALLERGENS)}")
    flags = {key: obj.get(key, False) for key in ("vegetarian", "local", "organic")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise CanteenConfigError(f"{where}: vegetarian, local and organic are true or false")
    return Dish(course, name.strip(), frozenset(allergens), **flags)


def _services(obj: Any, where: str) -> dict[MealService, tuple[Dish, ...]]:
    if not isinstance(obj, dict):
        raise CanteenConfigError(f"{where}: expected services (lunch, dinner...) as an object")
    result: dict[MealService, tuple[Dish, ...]] = {}
    for name, dishes in obj.items():
        try:
            service = MealService(name)
        except ValueError:
            raise CanteenConfigError(f"{where}: unknown service {name!r}") from None
        if not isinstance(dishes, list):
            raise CanteenConfigError(f"{where}.{name}: expected a list of dishes")
        result[service] = tuple(_dish(d, f"{where}.{name}[{i}]") for i, d in enumerate(dishes))
    return result


@dataclass(frozen=True)
class SchoolMenus:
    """The menus of one school: a weekly cycle and dated replacements."""

    school_uai: str
    name: str
    week: dict[str, dict[MealService, tuple[Dish, ...]]]
    dated: dict[date, dict[MealService, tuple[Dish, ...]]]


class MenuBook:
    """Every school's menus, from one file.

    Usage::

        book = MenuBook.load(Path("menus.json"))
        menu = book.menu_for("0801234G", date(2026, 11, 27), MealService.LUNCH)
    """

    def __init__(self, schools: dict[str, SchoolMenus]) -> None:
        self.schools = schools

    @classmethod
    def from_json(cls, obj: Any) -> MenuBook:
        """Build the book from the file's JSON object.

        Raises:
            CanteenConfigError: wrong format, unknown course, service, weekday or allergen.
        """
        if not isinstance(obj, dict) or obj.get("format") != MENU_FORMAT:
            raise CanteenConfigError(f"not a {MENU_FORMAT} file")
        schools_obj = obj.get("schools")
        if not isinstance(schools_obj, dict):
            raise CanteenConfigError("menus: expected schools as an object keyed by UAI")
        schools: dict[str, SchoolMenus] = {}
        for uai, school in schools_obj.items():
            where = f"schools.{uai}"
            if not isinstance(school, dict) or not isinstance(school.get("name"), str):
                raise CanteenConfigError(f"{where}: a school has a name")
            week_obj = school.get("week", {})
            if not isinstance(week_obj, dict) or not set(week_obj) <= set(WEEKDAYS):
                raise CanteenConfigError(f"{where}.week: keys are weekdays {WEEKDAYS}")
            dated_obj = school.get("dates", {})
            if not isinstance(dated_obj, dict):
                raise CanteenConfigError(f"{where}.dates: expected an object keyed by date")
            try:
                dated = {
                    date.fromisoformat(day): _services(menu, f"{where}.dates.{day}")
                    for day, menu in dated_obj.items()
                }
            except ValueError as exc:
                raise CanteenConfigError(f"{where}.dates: {exc}") from exc
            schools[uai] = SchoolMenus(
                school_uai=uai,
                name=school["name"],
                week={
                    day: _services(menu, f"{where}.week.{day}") for day, menu in week_obj.items()
                },
                dated=dated,
            )
        return cls(schools)

    @classmethod
    def load(cls, path: Path = DEFAULT_MENU_PATH) -> MenuBook:
        """Read a menu file.

        Raises:
            CanteenConfigError: unreadable or invalid file.
        """
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CanteenConfigError(f"cannot read menus {path}: {exc}") from exc
        return cls.from_json(obj)

    def menu_for(self, school_uai: str, day: date, service: MealService) -> Menu | None:
        """The menu of ``service`` on ``day`` in the school, or ``None`` if none is published.

        A dated menu replaces the weekly cycle for its whole day.
        """
        school = self.schools.get(school_uai)
        if school is None:
            return None
        services = school.dated.get(day)
        if services is None:
            services = school.week.get(WEEKDAYS[day.weekday()], {})
        dishes = services.get(service)
        if not dishes:
            return None
        return Menu(school_uai, school.name, day, service, dishes)

    def screen_lines(self, school_uai: str, day: date, service: MealService | None) -> list[str]:
        """The menu's screen lines, or a one-line French notice when there is none."""
        if service is None:
            return ["Pas de service de restauration en cours"]
        menu = self.menu_for(school_uai, day, service)
        if menu is None:
            return [f"Menu du {service.label} non communiqué"]
        return menu.screen_lines()
