"""The root Typer app and the one place where library errors become exit codes."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from hpsearch.errors import HpsearchError
from hpsearch.training.progress import log_console

# Wrapped on a terminal; one line per message in a log file.
console = log_console(stderr=False)
err_console = log_console(stderr=True)


# What an option's value is, as --help shows it beside the option; other options show their name in capitals.
METAVARS = {
    "study": "NAME|FILE", "storage": "URL", "data": "DIR", "out": "DIR", "artifacts": "DIR",
    "config": "FILE", "checkpoint": "FILE", "tuned_config": "FILE", "config_dir": "DIR", "split_file": "PATH",
    "sets": "KEY=VALUE", "timeout": "SECONDS", "heartbeat": "SECONDS", "grace": "SECONDS",
    "study_name": "NAME", "n_trials": "N", "workers": "N", "max_epochs": "N", "epochs": "N", "seeds": "N",
    "k": "N", "n": "N",
    "batch_size": "N", "max_train_images": "N", "port": "PORT", "host": "HOST", "seed": "N", "size": "PIXELS",
}  # fmt: skip


def _choices(param: Any) -> list[str]:
    """An option's choices, from click's type (older typer) or typer's own descriptor (typer >= 0.2x)."""
    for holder in (getattr(param, "type", None), getattr(param, "type_descriptor", None)):
        choices = getattr(holder, "choices", None)
        if choices:
            return [str(getattr(c, "value", c)) for c in choices]
    return []


def plain_metavars(params: list[Any]) -> None:
    """Name each option's value (``--timeout SECONDS``) and none for a flag: typer >= 0.2x would show a type
    tag instead (``--help <bool>``, ``--timeout <float>``). Options that set their own metavar keep it."""
    for param in params:
        if param.param_type_name != "option" or param.metavar is not None:
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif choices := _choices(param):
            param.metavar = "[" + "|".join(choices) + "]"
        else:
            param.metavar = METAVARS.get(param.name, param.name.upper())


class _EntryPoint(TyperGroup):
    """Every command runs inside this group's ``invoke``: process-wide settings are made once, and any
    ``HpsearchError`` becomes one red line on stderr and its exit code, never a traceback."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)
        plain_metavars(params)
        return params

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        stack = [command] if command is not None else []
        while stack:  # the command, and the commands of a sub-group (`hpsearch data check`)
            current = stack.pop()
            plain_metavars(current.get_params(ctx))
            stack.extend(getattr(current, "commands", {}).values())
        return command

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
