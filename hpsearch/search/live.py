"""Live study display: a row per worker (trial, params, epoch, the trial's best so far); the study's best."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hpsearch.search import keys
from hpsearch.training.metric_table import DEFAULT_METRIC, label
from hpsearch.training.progress import format_duration, is_interactive, log_console


def _fmt_params(params: dict[str, Any]) -> str:
    parts = []
    for k, v in params.items():
        short = k.rsplit(".", 1)[-1]
        parts.append(f"{short}={v:.3g}" if isinstance(v, float) else f"{short}={v}")
    return " ".join(parts)


@dataclass
class Board:
    """State behind the live table; fed by objective events or by polling the storage."""

    title: str
    metric: str = DEFAULT_METRIC
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    best: float | None = None
    best_trial: int | None = None
    done: dict[str, int] = field(default_factory=dict)
    console: Console = field(default_factory=log_console)
    live: Live | None = None
    epoch_lines: bool = False  # without a live table: one plain line per epoch (for logs and tail -f)

    def on_event(self, ev: dict[str, Any]) -> None:
        """Objective event hook (start / epoch / end)."""
        row = self.rows.setdefault(str(ev.get("worker", "0")), {})
        kind = ev["kind"]
        if kind == "start":
            self.metric = ev.get("metric", self.metric)
            if self.live is None:  # in a log: what this trial tries, once, before its epoch lines
                params = _fmt_params(ev.get("params", {})) or "no searched values"
                self._line(f"trial {ev['trial']} started: {params}")
            row.update(
                trial=ev["trial"],
                params=_fmt_params(ev.get("params", {})),
                epoch=0,
                epochs=ev.get("epochs"),
                value=None,
                state="RUNNING",
            )
        elif kind == "step":
            row.update(step=ev["step"], steps=ev["steps"], img_per_s=ev["img_per_s"], left_s=ev["left_s"])
        elif kind == "epoch":
            row.update(epoch=ev["epoch"], epochs=ev.get("epochs"), value=ev["value"], step=None)
            if self.live is None and self.epoch_lines:
                self._line(self.epoch_line(ev))
        elif kind == "end":
            row["state"] = ev["state"]
            self.done[ev["state"]] = self.done.get(ev["state"], 0) + 1
            if ev.get("value") is not None and (self.best is None or ev["value"] > self.best):
                self.best, self.best_trial = ev["value"], ev["trial"]
            if self.live is None:
                value = ev.get("value")
                reason = ev.get("reason")
                extra = (
                    f" {self.label} {value:.4f}"
                    if value is not None
                    else (f" ({reason})" if reason else "")
                )
                self._line(f"trial {ev['trial']} {ev['state']}{extra}")
        self.refresh()

    def _line(self, text: str) -> None:
        """One plain line of the log: no markup, no highlighting, never wrapped."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def poll(self, study: optuna.Study) -> None:
        """Rebuild rows from the storage (for workers in other processes)."""
        trials = study.get_trials(deepcopy=False)
        self.done = {}
        for t in trials:
            if t.state.is_finished():
                self.done[t.state.name] = self.done.get(t.state.name, 0) + 1
            if t.state == optuna.trial.TrialState.RUNNING:
                w = str(t.user_attrs.get(keys.WORKER, t.number))
                steps = sorted(t.intermediate_values)
                epochs = (t.user_attrs.get(keys.CONFIG) or {}).get("train", {}).get("epochs")
                self.rows[w] = {
                    "trial": t.number,
                    "params": _fmt_params(t.params),
                    "epoch": steps[-1] if steps else 0,
                    "epochs": epochs,
                    "value": t.intermediate_values[steps[-1]] if steps else None,
                    "state": "RUNNING",
                }
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
        if complete:
            b = max(complete, key=lambda t: t.value)
            self.best, self.best_trial = b.value, b.number
        self.refresh()

    def epoch_line(self, ev: dict[str, Any]) -> str:
        """What ``train`` prints per epoch, for one trial: ``trial 3 epoch 5/25 | train loss 0.2345 |
        val Dice 0.6950 (best 0.7012) | 23.1 img/s | elapsed 2m13s | trial left ~8m52s``."""
        worker = str(ev.get("worker", "0"))
        parts = [f"{'' if worker == '0' else f'worker {worker} '}trial {ev['trial']} "
                 f"epoch {ev['epoch']}/{ev.get('epochs', '?')}"]
        if ev.get("train_loss") is not None:
            parts.append(f"train loss {ev['train_loss']:.4f}")
        if ev.get("current") is not None:
            best = f" (best {ev['value']:.4f})" if ev.get("value") is not None else ""
            parts.append(f"{self.label} {ev['current']:.4f}{best}")
        elif ev.get("value") is not None:
            parts.append(f"best {self.label} {ev['value']:.4f}")
        if ev.get("img_per_s") is not None:
            parts.append(f"{ev['img_per_s']:.1f} img/s")
        if ev.get("elapsed") is not None:
            parts.append(f"elapsed {format_duration(ev['elapsed'])}")
        if ev.get("left_s") is not None:
            parts.append(f"trial left ~{format_duration(ev['left_s'])}")
        return " | ".join(parts)

    @property
    def label(self) -> str:
        """How the study's metric is shown."""
        return label(self.metric)

    def table(self) -> Table:
        """The rendered table."""
        best = f"{self.best:.4f} (trial {self.best_trial})" if self.best is not None else "-"
        counts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(self.done.items())) or "none finished yet"
        t = Table(title=f"{self.title} | best {self.label} {best} | {counts}", expand=False)
        # Each row shows the trial's best epoch so far: what the pruner compares.
        columns = ("worker", "trial", "params", "epoch", "batch", "img/s", "trial left")
        for col in (*columns, f"best {self.label}", "state"):
            t.add_column(col)
        for w, r in sorted(self.rows.items()):
            value = f"{r['value']:.4f}" if r.get("value") is not None else "-"
            running = r.get("state") == "RUNNING"
            t.add_row(
                w,
                str(r.get("trial", "-")),
                r.get("params", ""),
                f"{r.get('epoch', 0)}/{r.get('epochs', '?')}",
                f"{r['step']}/{r['steps']}" if running and r.get("step") else "-",
                f"{r['img_per_s']:.1f}" if running and r.get("img_per_s") else "-",
                f"~{format_duration(r['left_s'])}" if running and r.get("left_s") else "-",
                value,
                r.get("state", ""),
            )
        return t

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.table())


@contextlib.contextmanager
def live_board(title: str, enabled: bool | None = None, *, metric: str = DEFAULT_METRIC) -> Iterator[Board]:
    """A Board shown with rich Live on a terminal (``enabled=None``); without one, a plain line per epoch and
    per trial, so a log under nohup, Slurm or Kubernetes can be followed. ``enabled=False`` (a worker started
    under another process's live table) prints the per-trial lines only."""
    board = Board(title, metric=metric)
    if enabled is None:
        enabled = is_interactive()
        board.epoch_lines = not enabled
    if not enabled:
        yield board
        return
    with Live(board.table(), console=board.console, refresh_per_second=4, transient=False) as live:
        board.live = live
        yield board
