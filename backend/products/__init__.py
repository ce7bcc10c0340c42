"""Product catalogue (GTFS-Fares v2 shaped) and sales (loads onto cards)."""
