"""Typer CLI. Each command parses options, calls one library function, prints, and sets the exit code."""

from __future__ import annotations

from hpsearch.cli._app import app, main

# Importing the command modules registers their commands on ``app``.
from hpsearch.cli import data_cmd, reproduce_cmd, study_cmd, train_cmd  # noqa: E402,F401  isort: skip

__all__ = ["app", "main"]
