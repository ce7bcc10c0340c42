"""Per-network choices where the open Intercode field readers disagree.

Two widths differ between the public readers of Intercode (NF P99-405) cards:

- ``HolderProfiles`` repeat counter: **4 bits** in cardpeek ``calypso.lua``
  (``HolderProfiles(0..4)``), elafargue's ``intercode2.js``, the OùRA python reader, the Navigo
  ``structures.py`` reader and Flipper metroflip ``intercode.c``; 2 bits in Metrodroid
  ``IntercodeTransitData.kt``.
- ``ContractPassengerClass`` (FF contract): **8 bits** in Metrodroid ``IntercodeSubscription.kt``,
  ``intercode2.js``, ``structures.py`` and metroflip; 6 bits in cardpeek ``calypso.lua``.

The defaults follow the majority (4 and 8). A network whose cards were personalised the other way
gets its own :class:`PlumVariant` in :data:`NETWORK_VARIANTS`; docs/card-layout.md keeps the
sources.
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
    passenger_class_bits: int = 8

    def __post_init__(self) -> None:
        if self.holder_profile_count_bits not in (2, 4):
            raise SchemaError("must be 2 or 4", field="variant.holder_profile_count_bits")
        if self.passenger_class_bits not in (6, 8):
            raise SchemaError("must be 6 or 8", field="variant.passenger_class_bits")


DEFAULT_VARIANT = PlumVariant()

# Network id (decimal form of the BCD country + network digits) -> its variant. The regional
# network and the older Lille network are personalised with the majority reading.
NETWORK_VARIANTS: dict[int, PlumVariant] = {
    250000: DEFAULT_VARIANT,  # Hauts-de-France regional network (PLUM / Pass Pass)
    250149: DEFAULT_VARIANT,  # older Lille network id, still accepted
}


def variant_for_network(network_id: int | None) -> PlumVariant:
    """The variant of a network; networks not listed get the majority reading."""
    if network_id is None:
        return DEFAULT_VARIANT
    return NETWORK_VARIANTS.get(network_id, DEFAULT_VARIANT)
