"""What a partner reader or a shop till is registered for (beside its ``terminals`` row)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base


class PartnerTerminal(Base):
    """An employment partner's reader: which agency (``PARTNERS`` name) and which site.

    Attributes:
        terminal_id: the ``terminals`` row (kind ``partner``).
        partner: ``france_travail``, ``mission_locale``... (card_schema's ``PARTNERS`` table).
        site: the agency's site number written in the card's consultation record.
    """

    __tablename__ = "partner_terminals"

    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), primary_key=True)
    partner: Mapped[str] = mapped_column(String(32))
    site: Mapped[int]


class ShopTerminal(Base):
    """A merchant till taking Cursus aid: the shop's name and the purposes it may take.

    Attributes:
        terminal_id: the ``terminals`` row (kind ``shop``).
        shop_name: printed on receipts and reports.
        purposes: comma-separated, sorted, among ``books``, ``sport``, ``leisure``.
    """

    __tablename__ = "shop_terminals"

    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), primary_key=True)
    shop_name: Mapped[str] = mapped_column(String(200))
    purposes: Mapped[str] = mapped_column(String(64))
