"""The one way APDUs are traced: a logging level below DEBUG and one hex format.

Readers (firmware_host) and the emulated chips (hardware) both trace through here, so a trace of
the terminal side and of the emulated card side line up byte for byte. ``regioncard -vv`` shows
them. Keys never pass through here: only APDUs do, and APDUs carry no clear key.
"""

from __future__ import annotations

import logging

#: Logging level of APDU traces (below DEBUG).
TRACE = 5
logging.addLevelName(TRACE, "TRACE")


def hexstr(data: bytes | bytearray) -> str:
    """The one hex format of APDU traces and errors: upper case, bytes separated by spaces."""
    return bytes(data).hex(" ").upper()


def trace(logger: logging.Logger, direction: str, data: bytes, source: str = "") -> None:
    """Log one APDU at :data:`TRACE` level: ``[source] <direction> 00 A4 ...``."""
    if logger.isEnabledFor(TRACE):
        if source:
            logger.log(TRACE, "%s %s %s", source, direction, hexstr(data))
        else:
            logger.log(TRACE, "%s %s", direction, hexstr(data))
