"""A real OpenID Connect provider for the tests: panva's ``oidc-provider`` (npm), run by node.

The package is installed by :func:`install_provider` with npm into ``out/oidc-provider/`` (git
ignored), at the pinned version, on first use; the tiny configuration script is written there by
the test too. It registers one confidential client, answers the FranceConnect claims
(``given_name``, ``family_name``, ``birthdate``, ``email``; scopes of the same names) for the
accounts the test passes, and uses the package's own development login and consent pages
(``devInteractions``): any login is accepted there, the account id is the login typed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

OIDC_PROVIDER_VERSION = "9.13.3"
ROOT = Path(__file__).resolve().parents[2]
PROVIDER_DIR = ROOT / "out" / "oidc-provider"

SCRIPT = r"""
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    application_type: 'native',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: {
    openid: ['sub'],
    given_name: ['given_name'],
    family_name: ['family_name'],
    birthdate: ['birthdate'],
    email: ['email'],
  },
  async findAccount(ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['regioncard-test-cookie-key'] },
});
provider.listen(Number(port), '127.0.0.1', () => console.log('oidc-provider ready'));
"""


class ProviderUnavailable(RuntimeError):
    """node/npm missing or the package could not be installed."""


def install_provider() -> Path:
    """Install the pinned ``oidc-provider`` into ``out/oidc-provider`` (once); return the dir."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise ProviderUnavailable("node and npm are needed (Debian: apt-get install nodejs npm)")
    PROVIDER_DIR.mkdir(parents=True, exist_ok=True)
    package = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    installed = json.loads(package.read_text())["version"] if package.exists() else None
    if installed != OIDC_PROVIDER_VERSION:
        (PROVIDER_DIR / "package.json").write_text(
            json.dumps(
                {
                    "name": "regioncard-test-oidc-provider",
                    "private": True,
                    "type": "module",
                    "dependencies": {"oidc-provider": OIDC_PROVIDER_VERSION},
                }
            )
        )
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--save-exact"],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise ProviderUnavailable(f"npm install oidc-provider failed: {done.stderr[-500:]}")
    (PROVIDER_DIR / "provider.mjs").write_text(SCRIPT)
    return PROVIDER_DIR


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunningProvider:
    """A provider process and what the relying party needs to know."""

    issuer: str
    client_id: str
    client_secret: str


@contextmanager
def oidc_provider(
    redirect_uri: str, accounts: dict[str, dict[str, str]], *, start_timeout_s: float = 30.0
) -> Iterator[RunningProvider]:
    """Run the provider until the block ends; ``accounts``: login -> claims."""
    directory = install_provider()
    port = free_port()
    client_id, client_secret = "regioncard-holder-page", "secret-" + os.urandom(8).hex()
    process = subprocess.Popen(
        ["node", "provider.mjs", str(port), client_id, client_secret, redirect_uri],
        cwd=directory,
        env={**os.environ, "OIDC_ACCOUNTS": json.dumps(accounts), "NODE_ENV": "development"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + start_timeout_s
        assert process.stdout is not None
        while True:
            line = process.stdout.readline()
            if "oidc-provider ready" in line:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise ProviderUnavailable(f"oidc-provider did not start: {line}")
        yield RunningProvider(f"http://127.0.0.1:{port}", client_id, client_secret)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
