"""Employment partners' readers and partner shops' tills: registration, kind checks, records.

See docs/partner.md and docs/shop.md.
"""
