"""Host side of readers and peripherals: PC/SC, nfcpy and in-process readers; OSDP gate devices."""
