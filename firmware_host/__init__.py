"""Host side of readers and peripherals: PC/SC, nfcpy and in-process card readers; OSDP gate peripherals."""
