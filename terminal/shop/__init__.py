"""The Cursus aid till of partner shops (``regioncard shop``): see ``docs/shop.md``."""
