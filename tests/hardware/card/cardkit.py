"""Helpers of the emulated-card tests: demo keys, a personalised image, a minimal terminal.

:class:`Terminal` is the smallest correct driver of a secure session (the sequence
docs/secure-session.md describes); the real transaction engine lives in terminal/.
"""

from __future__ import annotations

from card_schema.crypto import KeyRole
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImage
from hardware.personalise import new_card, set_sv_balance, write_records
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import KeyFileStore, demo_key_refs

SERIAL = bytes.fromhex("0000000012345678")
SAM_SERIAL = bytes.fromhex("5A000001")
OK = b"\x90\x00"


def demo_keys() -> KeyFileStore:
    """Fixed, obviously-fake master keys: key n is n repeated 16 times."""
    return KeyFileStore({ref.label: bytes([n + 1]) * 16 for n, ref in enumerate(demo_key_refs())})


def personalised_image() -> CardImage:
    image = new_card(SERIAL, demo_keys())
    write_records(image, "plum", "environment", [b"\x25\x01ENV"])
    write_records(image, "plum", "contracts", [b"C1", b"C2", b"C3", b"C4"])
    write_records(image, "plum", "events", [b"E1", b"E2", b"E3"])
    write_records(image, "plum", "counters", [bytes.fromhex("000005000010")])
    write_records(image, "cursus", "aid_counters", [bytes.fromhex("002710")])  # 100.00 EUR books
    set_sv_balance(image, "wallet", 1000)
    return image


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


class Terminal:
    """Drives one card and one SAM the way a terminal must (docs/secure-session.md), with
    Calypso Rev 3 frames written out by hand (regular mode by default, or Rev 3.2 extended)."""

    def __init__(self, card: EmulatedCard, sam: EmulatedSAM, *, extended: bool = False) -> None:
        self.card = card
        self.sam = sam
        self.digesting = False
        self.aid = b""
        self.extended = extended

    @property
    def signature_size(self) -> int:
        return 8 if self.extended else 4

    def sam_ok(self, apdu: bytes) -> bytes:
        response = self.sam.transmit(apdu)
        assert response[-2:] == OK, response.hex()
        return response[:-2]

    def send(self, apdu: bytes) -> bytes:
        """One card command; inside a session both command (a case 4 one without Le) and
        response go to the SAM digest."""
        response = self.card.transmit(apdu)
        if self.digesting:
            digested = apdu[:-1] if len(apdu) > 5 and len(apdu) == 6 + apdu[4] else apdu
            self.sam_ok(b"\x80\x8c\x00\x00" + bytes([len(digested)]) + digested)
            self.sam_ok(b"\x80\x8c\x00\x00" + bytes([len(response)]) + response)
        return response

    def select(self, df_name: bytes) -> bytes:
        self.aid = df_name
        return self.card.transmit(b"\x00\xa4\x04\x00" + bytes([len(df_name)]) + df_name + b"\x00")

    def open_apdu(self, role: KeyRole, challenge: bytes, *, sfi: int = 0, record: int = 0) -> bytes:
        """Open Secure Session: P1 = record * 8 + key index, P2 = SFI * 8 + 1 (or + 2)."""
        p1 = record * 8 + role.key_index
        if self.extended:
            p2, data = sfi * 8 + 2, b"\x00" + challenge
        else:
            p2, data = sfi * 8 + 1, challenge
        return bytes([0x00, 0x8A, p1, p2, len(data)]) + data + b"\x00"

    def open_session(self, role: KeyRole, *, sfi: int = 0, record: int = 0) -> bytes:
        """Get Challenge, Open Secure Session, Select Diversifier, Digest Init; open data."""
        challenge = self.sam_ok(bytes([0x80, 0x84, 0x00, 0x00, 8 if self.extended else 4]))
        response = self.card.transmit(self.open_apdu(role, challenge, sfi=sfi, record=record))
        assert response[-2:] == OK, response.hex()
        data = response[:-2]
        self.sam_ok(b"\x80\x14\x00\x00\x08" + SERIAL)
        offset = 8 if self.extended else 4
        kif, kvc = data[offset + 1], data[offset + 2]
        p1 = 0x02 if self.extended else 0x00
        init = bytes([kif, kvc]) + data
        self.sam_ok(bytes([0x80, 0x8A, p1, 0xFF, len(init)]) + init)
        self.digesting = True
        return data

    def close_apdu(self, *, ratify: bool = True) -> bytes:
        """Digest Close in the SAM, and the Close Secure Session APDU carrying its signature."""
        self.digesting = False
        size = self.signature_size
        signature = self.sam_ok(bytes([0x80, 0x8E, 0x00, 0x00, size]))
        p1 = 0x80 if ratify else 0x00
        return bytes([0x00, 0x8E, p1, 0x00, size]) + signature + b"\x00"

    def close(self, *, ratify: bool = True) -> bytes:
        response = self.card.transmit(self.close_apdu(ratify=ratify))
        if response[-2:] == OK:  # postponed data (SV signatures) || card signature
            size = self.signature_size
            self.sam_ok(bytes([0x80, 0x82, 0x00, 0x00, size]) + response[-2 - size : -2])
        return response
