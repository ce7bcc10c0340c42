"""Settings of the holder's page, read from ``REGIONCARD_HOLDER_*`` environment variables.

Kept apart from :class:`backend.settings.Settings` (like the tariff seed): an app carries its own in
``app.state.holder_settings`` when the caller set one (tests do), else they are read from the
environment on first use.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import Request


class HolderSettings(BaseSettings):
    """Configuration of the holder's page.

    Attributes:
        token_minutes: lifetime of a holder session token.
        activation_days: how long a one-time code handed out at the desk stays valid.
        max_failures_per_login: failed sign-ins on one login within ``failure_window_minutes``
            before that login is refused with a 429.
        max_failures_per_client: the same, per client address (many logins tried from one place).
        failure_window_minutes: the window those failures are counted in.
        menu_file: the canteen menus (format ``regioncard.menus/1``, docs/canteen.md): the same
            file the school kitchens publish to their tills. Unset: the page says no menu is
            published.
        payment_provider: ``sandbox`` (embedded default; no money moves).
        oidc_issuer: OpenID Connect issuer URL (FranceConnect or another provider); unset: no
            OIDC sign-in button.
        oidc_client_id / oidc_client_secret: this service's client at that provider.
        oidc_redirect_uri: ``<public base URL>/holder/oidc/callback``, as registered there.
        oidc_scopes: scopes asked (FranceConnect: ``openid given_name family_name birthdate
            email``).
        oidc_acr_values: ``eidas1`` for FranceConnect; empty to send none.
        oidc_label: the text of the sign-in button.
    """

    model_config = SettingsConfigDict(env_prefix="REGIONCARD_HOLDER_", extra="ignore")

    token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    activation_days: int = Field(default=14, ge=1, le=90)
    max_failures_per_login: int = Field(default=5, ge=1)
    max_failures_per_client: int = Field(default=20, ge=1)
    failure_window_minutes: int = Field(default=15, ge=1)
    menu_file: Path | None = None
    payment_provider: str = "sandbox"
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = Field(default=None, repr=False)
    oidc_redirect_uri: str | None = None
    oidc_scopes: str = "openid given_name family_name birthdate email"
    oidc_acr_values: str = ""
    oidc_label: str = "Se connecter avec FranceConnect"

    @property
    def oidc_enabled(self) -> bool:
        """An OIDC provider is configured."""
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_redirect_uri)


def holder_settings(request: Request) -> HolderSettings:
    """The app's holder-page settings (set in ``app.state`` or read from the environment)."""
    state = request.app.state
    settings = getattr(state, "holder_settings", None)
    if settings is None:
        settings = HolderSettings()
        state.holder_settings = settings
    assert isinstance(settings, HolderSettings)
    return settings
