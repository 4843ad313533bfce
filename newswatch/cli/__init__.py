"""The ``newswatch`` command: the composition root. Nothing in the package imports it."""

from newswatch.cli.main import build_notifiers, compile_rules, main

__all__ = ["build_notifiers", "compile_rules", "main"]
