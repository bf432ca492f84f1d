"""The root Typer app and the one place where library errors become exit codes."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from hpsearch.errors import HpsearchError

console = Console(stderr=False)
err_console = Console(stderr=True)


class _EntryPoint(TyperGroup):
    """Every command runs inside this group's ``invoke``: process-wide settings are made once, and any
    ``HpsearchError`` becomes one red line on stderr and its exit code, never a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        import optuna

        # Optuna logs every trial at INFO; the live board and the summary say what matters.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            return super().invoke(ctx)
        except HpsearchError as exc:
            # Messages carry user paths and values; escape them so text like "[/x]" is not read as markup.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="hpsearch",
    cls=_EntryPoint,
    help="Hyperparameter search for medical image segmentation (U-Net / CBAM U-Net) on Optuna.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def say(text: str) -> None:
    """One line on stdout, printed as is (no markup, no highlighting)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
