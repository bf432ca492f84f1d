"""Progress of one ``fit``: a live bar on a terminal, one plain line per epoch in a log.

On a terminal the bar shows the epoch's batches, images/s and the time left in the whole run. Without one
(``nohup``, Slurm, Kubernetes, CI) a bar would be noise, so each finished epoch prints one line that
``tail -f`` can follow: epoch, train loss, val Dice, images/s, elapsed and time left.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def log_console(*, stderr: bool = True) -> Console:
    """A rich console that wraps lines only on a terminal: in a log file a line stays one line, however
    long (rich would otherwise wrap it at 80 columns)."""
    console = Console(stderr=stderr)
    console.soft_wrap = not console.is_terminal
    return console


_console = log_console()


def is_interactive() -> bool:
    """True when stderr is a terminal (progress bars would be noise in logs and CI)."""
    return _console.is_terminal


def format_duration(seconds: float | None) -> str:
    """``42s``, ``7m05s``, ``3h12m``, ``2d04h``: short enough for a log line."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def say(text: str) -> None:
    """One plain line on stderr, flushed: an epoch's line in a log, or a note before the run starts."""
    print(text, file=sys.stderr, flush=True)


class EpochBar:
    """Tracks one run's steps and epochs; draws a bar (``progress``) or writes lines (``log``), or neither."""

    def __init__(
        self,
        progress: Progress | None,
        total_epochs: int,
        steps: int,
        label: str,
        *,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        listener: Callable[[dict[str, float]], None] | None = None,
        every_s: float = 1.0,
        start_epoch: int = 0,
    ) -> None:
        self._p = progress
        self._epochs = total_epochs
        self._steps = max(1, steps)
        self._label = label
        self._log = log
        self._clock = clock
        self._t0 = clock()
        self._epoch_t0 = self._t0
        self._epoch_images = 0
        self._epoch_steps = 0
        # A resumed run starts after ``start_epoch``; only this sitting's epochs give the pace.
        self._start = start_epoch
        self._epochs_done = start_epoch
        self._listener = listener
        self._every_s = every_s
        self._last_heard = -float("inf")
        self._task = None
        if progress is not None:
            self._task = progress.add_task(self._title(start_epoch + 1), total=self._steps, rate="", left="")

    def _title(self, epoch: int) -> str:
        return f"{self._label} epoch {epoch}/{self._epochs}"

    def seconds_left(self) -> float | None:
        """Time left in the whole run: finished epochs give the pace; before that, this epoch's steps do."""
        now = self._clock()
        if self._epochs_done >= self._epochs:
            return 0.0  # the run is over: the last epoch's pace must not read as one more epoch to go
        done_here = self._epochs_done - self._start
        if done_here:
            per_epoch = (self._epoch_t0 - self._t0) / done_here
            in_epoch = max(0.0, per_epoch - (now - self._epoch_t0))
            return in_epoch + per_epoch * max(0, self._epochs - self._epochs_done - 1)
        if self._epoch_steps:
            per_step = (now - self._epoch_t0) / self._epoch_steps
            return per_step * (self._steps * (self._epochs - self._start) - self._epoch_steps)
        return None

    def advance_step(self, images: int = 0) -> None:
        """One optimizer step over ``images`` images done."""
        self._epoch_steps += 1
        self._epoch_images += images
        now = self._clock()
        dt = now - self._epoch_t0
        if self._listener is not None and now - self._last_heard >= self._every_s:
            # Throttled: a study's live table wants batch progress, not a call per batch.
            self._last_heard = now
            self._listener(
                {
                    "step": self._epoch_steps,
                    "steps": self._steps,
                    "img_per_s": self._epoch_images / dt if dt > 0 else 0.0,
                    "left_s": self.seconds_left() or 0.0,
                }
            )
        if self._p is None or self._task is None:
            return
        rate = f"{self._epoch_images / dt:.1f} img/s" if dt > 0 and self._epoch_images else ""
        left = f"run left ~{format_duration(self.seconds_left())}"
        self._p.update(self._task, advance=1, rate=rate, left=left)

    def end_epoch(
        self, epoch: int, *, train_loss: float, val_dice: float, best_dice: float, img_per_s: float = 0.0
    ) -> str:
        """Close epoch ``epoch``: reset the bar, or write the epoch's line. Returns the line."""
        self._epochs_done = epoch
        self._epoch_t0 = self._clock()
        self._epoch_steps = self._epoch_images = 0
        elapsed = format_duration(self._epoch_t0 - self._t0)
        line = (
            f"{self._title(epoch)} | train loss {train_loss:.4f} | val Dice {val_dice:.4f} "
            f"(best {best_dice:.4f}) | {img_per_s:.1f} img/s | elapsed {elapsed}"
            f" | left ~{format_duration(self.seconds_left())}"
        )
        if self._log is not None:
            self._log(line)
        if self._p is not None and self._task is not None:
            nxt = min(epoch + 1, self._epochs)
            self._p.reset(
                self._task,
                description=f"{self._title(nxt)} | last: loss {train_loss:.4f}, val Dice {val_dice:.4f} "
                f"(best {best_dice:.4f})",
            )
        return line


@contextlib.contextmanager
def epoch_progress(
    epochs: int,
    steps: int,
    label: str,
    enabled: bool | None,
    *,
    listener: Callable[[dict[str, float]], None] | None = None,
    start_epoch: int = 0,
) -> Iterator[EpochBar]:
    """Progress for ``fit``: ``None`` means a bar on a terminal and a line per epoch otherwise; ``False``
    means silent (a study's live board reports instead, fed by ``listener`` about once a second with the
    batch, images/s and time left); ``True`` forces the bar. ``start_epoch``: epochs a resumed run had
    already finished."""
    if enabled is None:
        enabled = is_interactive()
        if not enabled:
            yield EpochBar(
                None, epochs, steps, label, log=say, listener=listener, start_epoch=start_epoch
            )
            return
    if not enabled:
        yield EpochBar(None, epochs, steps, label, listener=listener, start_epoch=start_epoch)
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[left]}"),
        console=_console,
        transient=True,
    )
    with progress:
        yield EpochBar(progress, epochs, steps, label, listener=listener, start_epoch=start_epoch)
