"""The short note each finished trial carries in optuna-dashboard: what set it apart and how it ended."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpsearch.training.config import config_differences as differences
from hpsearch.training.progress import format_duration

_NOTE_LIMIT = 12  # differing settings listed before "and N more"


# Different in every trial by construction, so never worth a line in a note.
_PER_TRIAL = ("train.seed", "data.path", "provenance")
_ABSENT = object()  # a path the reference lacks differs whatever the trial's value, None included


def config_differences(config: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths of ``config`` whose value differs from ``reference`` (the study's fixed part, resolved),
    with the value in ``config``; the seed, the data path and the provenance are left out."""
    diffs = differences(config, reference, skip=_PER_TRIAL, missing=_ABSENT)
    return {path: va for path, (va, _) in diffs.items() if va is not _ABSENT}


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_note(
    *,
    state: str,
    metric: str,
    differences: Mapping[str, Any],
    searched: Mapping[str, Any] | None = None,
    best_value: float | None = None,
    best_epoch: int | None = None,
    epochs_run: int | None = None,
    epochs: int | None = None,
    wall_s: float | None = None,
    reason: str | None = None,
) -> str:
    """Markdown for the dashboard's note: outcome line, the values the search drew for this trial, then any
    other setting that differs from the study's fixed part, so a person reading one trial sees what was
    tried without opening its config."""
    head = f"**{state}**"
    if best_value is not None and best_epoch:
        head += f" · best {metric} {best_value:.4f} at epoch {best_epoch}"
    if epochs_run is not None and epochs:
        head += f" · ran {epochs_run}/{epochs} epochs"
    if wall_s is not None:
        head += f" · wall {format_duration(wall_s)}"
    lines = [head]
    if reason:
        lines.append(f"\n{'Pruned' if state == 'PRUNED' else 'Why'}: {reason}")
    searched = dict(searched or {})
    if searched:
        lines.append(f"\nSearched values: {_listed(list(searched.items()))}")
    others = [(k, v) for k, v in differences.items() if k not in searched]
    if others:
        lines.append(f"\nOther settings that differ from the study's fixed ones: {_listed(others)}")
    elif not searched:
        lines.append("\nThe study's fixed settings, unchanged.")
    return "\n".join(lines) + "\n"


def _listed(items: list[tuple[str, Any]]) -> str:
    shown = ", ".join(f"`{k}={_fmt(v)}`" for k, v in items[:_NOTE_LIMIT])
    more = f" and {len(items) - _NOTE_LIMIT} more" if len(items) > _NOTE_LIMIT else ""
    return shown + more
