#!/usr/bin/env bash
# Bring a fresh Debian machine to the point where `make test` and `make demo` run:
# the Debian packages the real components need, then a virtualenv with the project.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, by the command or file that proves each is present.
#   pcscd            PC/SC daemon (real reader stack)
#   vsmartcard-vpcd  virtual reader driver for pcscd: our emulated card and SAM plug into it
#   softhsm2         PKCS#11 token holding the master and signing keys in tests and the demo
#   postgresql       the production database, started by the tests in a temporary folder
#   swig, libpcsclite-dev, pkg-config   build pyscard from source when no wheel fits
#   chromium         the desk page's browser test (Playwright drives Debian's chromium)
#   nodejs, npm      the holder page's OIDC test runs a real provider (npm oidc-provider)
declare -A NEED=(
  [pcscd]=/usr/sbin/pcscd
  [vsmartcard-vpcd]=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
  [softhsm2]=/usr/bin/softhsm2-util
  [postgresql]=/usr/lib/postgresql
  [swig]=/usr/bin/swig
  [libpcsclite-dev]=/usr/include/PCSC/winscard.h
  [pkg-config]=/usr/bin/pkg-config
  [chromium]=/usr/bin/chromium
  [nodejs]=/usr/bin/node
  [npm]=/usr/bin/npm
)
missing=()
for pkg in "${!NEED[@]}"; do
  [ -e "${NEED[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
# Reinstall only when the project metadata or the lock file changed since the last install.
# requirements.lock pins every package at the versions CI tested (make lock regenerates it,
# docs/dependencies.md): the pinned set goes in first, then the project itself without
# resolving anything again, and `pip check` fails if the lock no longer covers pyproject.toml.
stamp=.venv/.installed-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
if [ ! -e "$stamp" ]; then
  echo "bootstrap: installing the locked dependencies and the project into .venv"
  # pip's log goes to a file and is shown only when the install fails.
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -r requirements.lock &&
         .venv/bin/python -m pip install -q --no-deps -e . &&
         .venv/bin/python -m pip check; } >.venv/pip.log 2>&1; then
    grep -v "WARNING: Location" .venv/pip.log >&2
    echo "bootstrap: pip install failed (full log in .venv/pip.log)" >&2
    echo "bootstrap: if pyproject.toml changed, run 'make lock' to update requirements.lock" >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
