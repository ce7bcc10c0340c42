"""Authentication and authorisation: desk agents (OAuth2 password flow, JWT) and terminals."""
