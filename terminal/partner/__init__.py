"""The employment partners' reader (``regioncard partner``): see ``docs/partner.md``."""
