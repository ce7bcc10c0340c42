"""Holder accounts, one-time activation codes, login attempts, guardians, online payments and the
trip history kept at the holder's request."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base


class HolderAccount(Base):
    """The web account of one holder.

    Attributes:
        holder_id: the holder it opens (one account per holder).
        login: the sign-in name chosen at activation (an e-mail address, lower case); ``None`` for
            an account opened only through OpenID Connect.
        password_hash: argon2id hash (argon2-cffi's self-describing string); ``None`` for OIDC only.
        oidc_issuer / oidc_sub: the identity provider and its subject, once linked.
        keep_trip_history: the holder asked to keep their own trips (default: no).
        history_since: when that was last switched on (trips before it are never collected).
    """

    __tablename__ = "holder_accounts"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_sub"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), unique=True)
    login: Mapped[str | None] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    oidc_issuer: Mapped[str | None] = mapped_column(String(300))
    oidc_sub: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    keep_trip_history: Mapped[bool] = mapped_column(default=False)
    history_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ActivationCode(Base):
    """A one-time code handed out at the desk; only its SHA-256 is stored."""

    __tablename__ = "holder_activation_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginAttempt(Base):
    """One failed sign-in (throttling counts them per login and per client address)."""

    __tablename__ = "holder_login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(200), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class GuardianLink(Base):
    """A legal guardian's account manages a minor holder's page (recorded at the desk)."""

    __tablename__ = "holder_guardians"
    __table_args__ = (UniqueConstraint("guardian_holder_id", "ward_holder_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    guardian_holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    ward_holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OnlinePayment(Base):
    """A payment made on the holder's page, through a payment provider.

    Attributes:
        provider / provider_ref: who took the money and their reference.
        status: ``paid`` or ``declined``.
        sale_id: the sale (and so the action list entry) it paid for, once paid.
    """

    __tablename__ = "holder_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    paid_by_holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"))
    card_serial: Mapped[str] = mapped_column(String(32))
    product_code: Mapped[int]
    amount_cents: Mapped[int]
    provider: Mapped[str] = mapped_column(String(32))
    provider_ref: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sale_id: Mapped[int | None] = mapped_column(ForeignKey("sales.id"))


class KeptTrip(Base):
    """One tap kept under the holder's account because they opted in (never shown to anyone else).

    Copied from ``taps`` while the 48-hour pseudonym link still exists, only for taps after
    ``HolderAccount.history_since``; deleted when the holder opts out, and after
    ``history.DEFAULT_KEPT_TRIP_DAYS`` (docs/holder.md).
    """

    __tablename__ = "holder_kept_trips"

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    tap_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(24))
    application: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(12))
    station_id: Mapped[int | None]
    school_uai: Mapped[str | None] = mapped_column(String(16))
    product_code: Mapped[int | None]
