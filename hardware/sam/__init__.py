"""The emulated SAM: master keys (key file or PKCS#11 token), session digest, SV and signatures."""
