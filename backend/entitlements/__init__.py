"""Entitlements: school aid per school year and funder purpose; employment rights from partners."""
