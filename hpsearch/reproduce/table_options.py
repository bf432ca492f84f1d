"""What ``hpsearch reproduce`` is asked to do: one record, built once by the CLI and passed down.

The library takes every setting as an explicit field here; only the CLI reads the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hpsearch.errors import ConfigError

__all__ = ["COMPILE_MODES", "ReproduceOptions"]

COMPILE_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class ReproduceOptions:
    """The table's settings (CLI > column config files > defaults); checked when built."""

    data: str | Path  # the dataset folder (the CLI resolves --data / HPSEARCH_DATA before building this)
    out: str | Path = Path("runs/reproduce")  # results folder: one sub-folder per column
    columns: Sequence[str] | None = None  # column keys, comma-separated entries allowed; None: all five
    seeds: int = 1  # seeds per column (seed s changes train.seed only)
    quick: bool = False  # tiny models, 64 px, a few epochs: proves the path, measures nothing
    device: str | None = None  # None: each config's own (``auto`` unless it says otherwise)
    epochs: int | None = None  # cap on every column's epochs
    max_train_images: int | None = None  # train on only this many images
    config_dir: str | Path | None = None  # folder with the column configs (None: the shipped configs/)
    tuned_config: str | Path | None = None  # an exported config for both tuned columns
    compile_mode: str | None = None  # torch.compile: auto, on, off (None: each config's own)
    scale: str | None = None  # named scale (None: the configs' own)
    progress: bool | None = None  # progress bars (None: when the output is a terminal)

    def __post_init__(self) -> None:
        # Checked here so that no caller gets as far as loading configs with a setting that cannot run.
        if self.seeds < 1:
            raise ConfigError(f"--seeds is {self.seeds}; expected 1 or more")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs is {self.epochs}; expected 1 or more")
        if self.compile_mode not in (None, *COMPILE_MODES):
            raise ConfigError(f"--compile '{self.compile_mode}' is not one of: {', '.join(COMPILE_MODES)}")

    @property
    def out_dir(self) -> Path:
        """The results folder as a path."""
        return Path(self.out)

    @property
    def config_folder(self) -> Path | None:
        """``config_dir`` as a path, or None for the shipped configs."""
        return Path(self.config_dir) if self.config_dir else None

    @property
    def tuned_file(self) -> Path | None:
        """``tuned_config`` as a path, or None for the shipped tuned configs."""
        return Path(self.tuned_config) if self.tuned_config else None
