"""Reader profiles: every profile loads and points at rules a udev would accept."""

from __future__ import annotations

import re

import pytest

from firmware_host.readers.pcsc import matches
from hardware.profiles import PROFILE_DIR, ProfileError, all_profiles, load_profile


def test_every_profile_loads() -> None:
    profiles = {p.id: p for p in all_profiles()}
    assert set(profiles) == {"acr122u", "omnikey5022", "pn532_uart"}
    assert profiles["acr122u"].reader_specs == ["pcsc:ACS ACR122U*", "nfc:usb:072f:2200"]
    assert profiles["omnikey5022"].reader_specs == ["pcsc:HID Global OMNIKEY 5022*"]
    assert profiles["pn532_uart"].reader_specs == ["nfc:tty:USB0:pn532"]


def test_pcsc_patterns_match_the_names_pcscd_gives() -> None:
    acr, omnikey = load_profile("acr122u"), load_profile("omnikey5022")
    assert acr.pcsc and omnikey.pcsc
    assert matches(acr.pcsc["reader_pattern"], "ACS ACR122U PICC Interface 00 00")
    assert matches(
        omnikey.pcsc["reader_pattern"], "HID Global OMNIKEY 5022 Smart Card Reader 00 00"
    )


def test_udev_rules_name_every_usb_reader() -> None:
    rules = (PROFILE_DIR / "99-regioncard-readers.rules").read_text()
    for line in rules.splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r'(\w+(\{\w+\})?(==|=|\+=)"[^"]*"(, )?)+', line), line
    for profile in all_profiles():
        if profile.usb:
            assert f'ATTRS{{idVendor}}=="{profile.usb["vendor"]}"' in rules
            assert f'ATTRS{{idProduct}}=="{profile.usb["product"]}"' in rules
    assert "pn533_usb" in rules


def test_unknown_profile_is_an_error() -> None:
    with pytest.raises(ProfileError):
        load_profile("no-such-reader")
