"""Bridges that put an emulated chip behind a real reader stack.

- :mod:`hardware.bridges.vpcd`: a card or SAM in a reader of the real ``pcscd`` (vsmartcard vpcd).
- :mod:`hardware.bridges.nfc_udp`: a card as an ISO 14443-4 type A target of nfcpy's ``udp`` driver.
- :mod:`hardware.bridges.testchip`: a dictionary-backed chip for bridge tests and benchmarks.
"""
