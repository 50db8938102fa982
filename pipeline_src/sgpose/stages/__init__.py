"""Pipeline stages: one module per `sgpose` subcommand, each a thin layer over pure functions."""
