"""The gate validator, the bike-shelter door and the inspector's reader (docs/gate.md)."""

from terminal.gate.validator import (
    DISPLAY_PRESENT_AGAIN,
    GateValidator,
    TapOutcome,
    TapResult,
)

__all__ = [
    "DISPLAY_PRESENT_AGAIN",
    "GateValidator",
    "TapOutcome",
    "TapResult",
]
