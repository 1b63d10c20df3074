"""The ``fmsearch`` command: one click group, one short module per command."""

from .main import main

__all__ = ["main"]
