"""Deny-lists: blocked card serials, versioned, signed in the HSM, served full or as deltas."""
