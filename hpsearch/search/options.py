"""What ``run``, ``create`` and ``worker`` are asked to do, and ``--set`` values to and from the command line.

The library takes every setting as an explicit field here; only the CLI reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpsearch.search.storage import StorageOptions
from hpsearch.training.config import parse_overrides

__all__ = ["SearchOptions", "parse_overrides", "set_args"]


@dataclass
class SearchOptions:
    """Options shared by ``run``, ``create`` and ``worker`` (CLI > study file > defaults)."""

    study: str  # a shipped study name, a study YAML path, or (for a worker) the name of a stored study
    storage: str  # the Optuna storage URL
    data: str | Path | None = None  # dataset folder; None: the study's data.path, or synthetic data
    n_trials: int | None = None  # the study's total budget (run/create); None keeps the study file's
    timeout: float | None = None  # wall-time budget: no trial starts after it; a running one stops
    device: str | None = None
    study_name: str | None = None  # name in storage (default: the spec's name)
    out: str | Path | None = None  # trial output root (default ./runs)
    artifacts: str | Path | None = None  # artifact folder (default: beside the SQLite file)
    overrides: dict[str, Any] = field(default_factory=dict)  # --set KEY=VALUE, parsed
    max_epochs: int | None = None  # cap on every trial's epochs
    scale: str | None = None  # named scale (None: the stored study's, else "full")
    force: bool = False  # resume even if the spec or the data split changed
    storage_options: StorageOptions = field(default_factory=StorageOptions)
    storage_from_env: bool = False  # the URL came from the environment: a resume command leaves it out

    @property
    def out_root(self) -> Path:
        """The folder that holds one sub-folder per study."""
        return Path(self.out or "runs")


def set_args(overrides: dict[str, Any]) -> list[str]:
    """``--set KEY=VALUE`` arguments that parse back (``parse_overrides``) to the same values."""
    out: list[str] = []
    for k, v in overrides.items():
        dumped = yaml.safe_dump(v, default_flow_style=True, width=float("inf"))
        out += ["--set", f"{k}={dumped.strip().removesuffix('...').strip()}"]
    return out
