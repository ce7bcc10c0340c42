"""Fixtures of the SAM tests: a key-file store and a real SoftHSM2 token with the same keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from samkit import demo_master_keys

from hardware.sam.keystore import PKCS11KeyStore
from hardware.sam.softhsm import SoftHSMToken, create_token, find_library


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> SoftHSMToken:
    """A SoftHSM2 token holding the demo master keys (one per test session: see softhsm.py)."""
    if find_library() is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")  # a failure in CI
    return create_token(tmp_path_factory.mktemp("softhsm"), master_keys=demo_master_keys())


@pytest.fixture
def token_store(softhsm_token: SoftHSMToken) -> Iterator[PKCS11KeyStore]:
    store = PKCS11KeyStore(softhsm_token.library, softhsm_token.label, softhsm_token.user_pin)
    yield store
    store.close()
