"""The ``regioncard`` command line: one entry point, one subcommand per role."""
