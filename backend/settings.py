"""The backend's settings: one :class:`Settings`, read from ``REGIONCARD_*`` environment variables.

Nothing secret is ever logged or shown in ``repr``: the JWT secret and the PKCS#11 PIN are
:class:`~pydantic.SecretStr`. When no JWT secret is given, one is generated on first use and kept in
``<var_dir>/jwt-secret`` (mode 0600) so tokens survive a restart.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"  # Debian package softhsm2


def default_home() -> Path:
    """The one data folder: ``$REGIONCARD_HOME``, else ``$XDG_DATA_HOME/regioncard`` (by default
    ``~/.local/share/regioncard``) — never a folder relative to where a command is run."""
    home = os.environ.get("REGIONCARD_HOME")
    if home:
        return Path(home)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "regioncard"


class Settings(BaseSettings):
    """Every knob of the backend, with defaults that work on a fresh machine (SQLite, demo HSM).

    Attributes:
        var_dir: the one data folder: embedded database, generated JWT secret, auto-created
            token (``REGIONCARD_VAR_DIR``, else ``REGIONCARD_HOME``, else
            ``~/.local/share/regioncard``; see :func:`default_home`).
        database_url: SQLAlchemy URL; default ``sqlite:///<var_dir>/regioncard.db``.
        jwt_secret: HS256 secret for agent tokens; generated and stored in ``var_dir`` if absent.
        jwt_expiry_minutes: lifetime of an agent token (short: desk sessions re-authenticate).
        pkcs11_module: PKCS#11 library (SoftHSM2 by default, an HSM vendor's library in production).
        pkcs11_token_label: label of the token holding the backend keys.
        pkcs11_user_pin: user PIN of that token; when empty, the auto-created SoftHSM2 token's
            random PIN, read from ``<var_dir>/softhsm/pins.json`` (mode 0600).
        softhsm2_conf: SoftHSM2 configuration file; when empty and the module is SoftHSM2, a demo
            token with demo keys is created under ``var_dir/softhsm`` on first start.
        pseudonym_rotation_days: how long one pseudonym key is used before the next one.
        card_link_retention_hours: how long a pseudonym -> card serial link is kept (CNIL: <= 48 h).
        k_anonymity: smallest group an open-data cell may describe (>= 10).
        max_body_bytes: largest request body accepted by any endpoint.
        max_batch_bytes: largest upload batch accepted.
        max_batch_records: most records in one upload batch.
        auto_migrate: apply Alembic migrations at startup (the embedded SQLite default).
        desk_idle_lock_seconds: the desk page and the back office lock themselves (logout,
            form cleared) after this long without a key press or a click.
    """

    model_config = SettingsConfigDict(env_prefix="REGIONCARD_", extra="ignore")

    var_dir: Path = Field(default_factory=lambda: default_home())
    database_url: str = ""
    jwt_secret: SecretStr | None = Field(default=None, repr=False)
    jwt_expiry_minutes: int = Field(default=15, ge=1, le=24 * 60)
    pkcs11_module: str = SOFTHSM2_MODULE
    pkcs11_token_label: str = "regioncard-backend"
    pkcs11_user_pin: SecretStr | None = Field(default=None, repr=False)
    softhsm2_conf: Path | None = None
    pseudonym_rotation_days: int = Field(default=7, ge=1, le=366)
    card_link_retention_hours: int = Field(default=48, ge=1, le=48)
    k_anonymity: int = Field(default=10, ge=10)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_batch_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_batch_records: int = Field(default=5000, ge=1)
    auto_migrate: bool = True
    desk_idle_lock_seconds: int = Field(default=300, ge=5, le=8 * 3600)

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        self.var_dir = self.var_dir.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'regioncard.db'}"
        return self

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or ``None`` for another database (or in memory)."""
        if not self.database_url.startswith("sqlite"):
            return None
        _, _, rest = self.database_url.partition(":///")
        path = rest.split("?", 1)[0]
        return None if not path or path == ":memory:" else Path(path)

    @property
    def auto_token_dir(self) -> Path | None:
        """Folder of the SoftHSM2 token made on first start, when that is how keys are kept."""
        if self.softhsm2_conf is not None or Path(self.pkcs11_module).name != "libsofthsm2.so":
            return None
        return self.var_dir / "softhsm"

    def describe(self) -> str:
        """What an operator must see at start: data folder, database (password hidden), token."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.database_url).render_as_string(hide_password=True)
        except ArgumentError:
            url = "(adresse illisible)"
        where = self.auto_token_dir or self.softhsm2_conf or "jeton matériel"
        return (
            f"dossier de données : {self.var_dir}\n"
            f"base de données : {url}\n"
            f"jeton PKCS#11 : {self.pkcs11_token_label} ({self.pkcs11_module}; {where})"
        )

    @property
    def pseudonym_rotation(self) -> timedelta:
        """Rotation period of the pseudonym key."""
        return timedelta(days=self.pseudonym_rotation_days)

    @property
    def jwt_token_lifetime(self) -> timedelta:
        """Lifetime of an agent token."""
        return timedelta(minutes=self.jwt_expiry_minutes)

    @property
    def card_link_retention(self) -> timedelta:
        """How long a card link may be kept."""
        return timedelta(hours=self.card_link_retention_hours)

    def jwt_secret_value(self) -> str:
        """The JWT signing secret: the configured one, else the one stored in ``var_dir``.

        A missing file is created with a fresh 256-bit secret, readable by its owner only.
        """
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.var_dir / "jwt-secret"
        if path.exists():
            return path.read_text(encoding="ascii").strip()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secret + "\n")
        self.jwt_secret = SecretStr(secret)
        return secret
