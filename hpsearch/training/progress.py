"""Rich progress displays that stay quiet when output is not a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

_console = Console(stderr=True)


def is_interactive() -> bool:
    """True when stderr is a terminal (progress bars would be noise in logs and CI)."""
    return _console.is_terminal


class EpochBar:
    """Per-epoch bar of steps, with the last epoch's loss and val Dice in its description."""

    def __init__(self, progress: Progress | None, total_epochs: int, steps: int, label: str) -> None:
        self._p = progress
        self._epochs = total_epochs
        self._label = label
        self._task = None
        if progress is not None:
            self._task = progress.add_task(f"{label} epoch 1/{total_epochs}", total=steps)

    def advance_step(self, loss: float | None = None) -> None:
        """One optimizer step done."""
        if self._p is not None and self._task is not None:
            self._p.advance(self._task)

    def end_epoch(self, epoch: int, *, train_loss: float, val_dice: float, best_dice: float) -> None:
        """Show the finished epoch's numbers and reset the bar for the next one."""
        if self._p is None or self._task is None:
            return
        nxt = min(epoch + 1, self._epochs)
        self._p.reset(
            self._task,
            description=f"{self._label} epoch {nxt}/{self._epochs} | loss {train_loss:.4f} "
            f"| val Dice {val_dice:.4f} (best {best_dice:.4f})",
        )


@contextlib.contextmanager
def epoch_progress(epochs: int, steps: int, label: str, enabled: bool | None) -> Iterator[EpochBar]:
    """A transient progress bar for ``fit``; ``enabled=None`` means 'only on a terminal'."""
    if enabled is None:
        enabled = is_interactive()
    if not enabled:
        yield EpochBar(None, epochs, steps, label)
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console,
        transient=True,
    )
    with progress:
        yield EpochBar(progress, epochs, steps, label)
