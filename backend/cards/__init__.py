"""Cards: serials, status (active, blocked, replaced), applications carried, replacement links."""
