"""CLI subcommands, one module per workflow area; each module has ``register(subparsers)``."""
