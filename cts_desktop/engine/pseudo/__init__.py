"""The pseudo-position book: every configuration of every set as numpy columns (DOMAIN §2, D17)."""
