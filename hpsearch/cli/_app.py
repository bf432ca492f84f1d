"""The root Typer app and the one place where library errors become exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hpsearch.errors import HpsearchError

app = typer.Typer(
    name="hpsearch",
    help="Hyperparameter search for medical image segmentation (U-Net / CBAM U-Net) on Optuna.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn HpsearchError into one red line on stderr and its exit code (2), never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HpsearchError as exc:
            # Messages carry user paths and values; escape them so text like "[/x]" is not read as markup.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
