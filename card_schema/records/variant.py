"""Per-network choices where the open Intercode field readers disagree.

Two widths differ between the public readers of Intercode (NF P99-405) cards:

- ``HolderProfiles`` repeat counter: **4 bits** in cardpeek ``calypso.lua``
  (``HolderProfiles(0..4)``), elafargue's ``intercode2.js``, the OùRA python reader, the Navigo
  ``structures.py`` reader and Flipper metroflip ``intercode.c``; 2 bits in Metrodroid
  ``IntercodeTransitData.kt``.
- ``ContractPassengerClass`` (FF contract): **6 bits** in cardpeek ``calypso.lua`` and in the
  field readers of the region's networks; 8 bits in Metrodroid ``IntercodeSubscription.kt``,
  ``intercode2.js``, ``structures.py`` and metroflip.

The defaults are 4 and 6: the holder-profile counter follows the majority of the open readers,
the passenger class the field readers that inspect our cards (a contract written with 8 bits is
misread by them from that field on). The 8-bit passenger class stays available as the named
variant :data:`PASSENGER_CLASS_8BIT` (``NAMED_VARIANTS["passenger-class-8"]``) for data
personalised that way; a network whose cards were personalised another way gets its own
:class:`PlumVariant` in :data:`NETWORK_VARIANTS`. docs/card-layout.md keeps the sources.
"""

from __future__ import annotations

from dataclasses import dataclass

from card_schema.errors import SchemaError


@dataclass(frozen=True)
class PlumVariant:
    """Widths that depend on the network's reading of Intercode.

    Attributes:
        holder_profile_count_bits: width of the ``HolderProfiles`` repeat counter (2 or 4).
        passenger_class_bits: width of ``ContractPassengerClass`` in the FF contract (6 or 8).
    """

    holder_profile_count_bits: int = 4
    passenger_class_bits: int = 6

    def __post_init__(self) -> None:
        if self.holder_profile_count_bits not in (2, 4):
            raise SchemaError("must be 2 or 4", field="variant.holder_profile_count_bits")
        if self.passenger_class_bits not in (6, 8):
            raise SchemaError("must be 6 or 8", field="variant.passenger_class_bits")


DEFAULT_VARIANT = PlumVariant()
"""Holder-profile counter on 4 bits, FF-contract passenger class on 6 bits."""

PASSENGER_CLASS_8BIT = PlumVariant(holder_profile_count_bits=4, passenger_class_bits=8)
"""The Metrodroid / intercode2.js / metroflip reading of the FF contract's passenger class (8 bits):
the default of this project before the field readers' 6 bits were adopted."""

#: Variants by name, for the command line and configuration files.
NAMED_VARIANTS: dict[str, PlumVariant] = {
    "default": DEFAULT_VARIANT,
    "passenger-class-8": PASSENGER_CLASS_8BIT,
}

# Network id (decimal form of the BCD country + network digits) -> its variant. The regional
# network and the older Lille network are personalised with the default (field readers') reading.
NETWORK_VARIANTS: dict[int, PlumVariant] = {
    250000: DEFAULT_VARIANT,  # Hauts-de-France regional network (PLUM / Pass Pass)
    250149: DEFAULT_VARIANT,  # older Lille network id, still accepted
}


def variant_for_network(network_id: int | None) -> PlumVariant:
    """The variant of a network; networks not listed get the majority reading."""
    if network_id is None:
        return DEFAULT_VARIANT
    return NETWORK_VARIANTS.get(network_id, DEFAULT_VARIANT)
