"""Privacy: the 48-hour card link table, pseudonym key retirement, k-anonymous open data."""
