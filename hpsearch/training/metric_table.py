"""The metrics a run keeps its best epoch by and a study optimises: name, direction, label, in one table.

Every room reads it from here (``search`` checks a study's direction with it, the live table and the CLI
label with it, ``results`` scales plots with it, ``training.loop.improves`` picks a best epoch in its
direction); it imports nothing heavy, so the CLI may load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricName = Literal["val_dice", "val_iou"]  # the names of METRICS (a Literal, so configs validate it)
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Metric:
    """One validation metric of a fit's history row."""

    name: str
    direction: Direction  # which way it improves
    label: str  # how the live table and the CLI name it
    unit: bool = True  # it lies in [0, 1] (plots give it that axis)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("val_dice", "maximize", "val Dice"),
        Metric("val_iou", "maximize", "val IoU"),
    )
}
DEFAULT_METRIC: MetricName = "val_dice"


def label(metric: str) -> str:
    """The metric's label (an unknown name is shown as is)."""
    return METRICS[metric].label if metric in METRICS else metric
