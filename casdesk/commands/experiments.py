"""CLI: the paper's experiments (``casdesk experiment``) and the model list (``casdesk models``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # noqa: ARG001  (filled in by the experiments work)
    """No subcommands yet."""
