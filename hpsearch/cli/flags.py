"""Option definitions every command shares, the choices they accept, and the environment variables they read.

The environment is read here and nowhere else in the package (Typer's ``envvar`` for options, and the worker
index of a Slurm or Kubernetes job); the library only takes explicit arguments.
"""

from __future__ import annotations

import enum
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hpsearch.data.folder import DATA_ENV

if TYPE_CHECKING:
    from hpsearch.search.options import SearchOptions

STORAGE_ENV = "HPSEARCH_STORAGE"
OUT_ENV = "HPSEARCH_OUT"
ARTIFACTS_ENV = "HPSEARCH_ARTIFACTS"
# SLURM_PROCID last: it is 0 in every single-task array element, where the array index tells workers apart.
WORKER_INDEX_ENVS = ("HPSEARCH_WORKER_INDEX", "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "SLURM_PROCID")
DEFAULT_STORAGE = "sqlite:///hpsearch.db"


class ExportFormat(str, enum.Enum):
    """``hpsearch export --format``."""

    yaml = "yaml"
    json = "json"


class EvalSplit(str, enum.Enum):
    """``hpsearch evaluate --split``: a part of the run's split, or every pair in the folder."""

    test = "test"
    val = "val"
    train = "train"
    all = "all"


class CompileMode(str, enum.Enum):
    """``--compile``: torch.compile auto, on or off (``train.compile``)."""

    auto = "auto"
    on = "on"
    off = "off"


DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        envvar=DATA_ENV,
        help=f"Dataset folder holding images/ and masks/ (default: ${DATA_ENV}).",
        show_default=False,
    ),
]
StorageOpt = Annotated[
    str,
    typer.Option(
        "--storage", envvar=STORAGE_ENV, help=f"Optuna storage URL, SQLite or PostgreSQL (or ${STORAGE_ENV})."
    ),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto, cuda, mps or cpu (overrides the config)")
]
StudyOpt = Annotated[
    str, typer.Option("--study", help="a shipped study name (see `hpsearch studies`) or a YAML path")
]
StoredStudyOpt = Annotated[
    str | None, typer.Option("--study", help="study name in storage (default: its only study)")
]
NTrialsOpt = Annotated[int | None, typer.Option("--n-trials", help="total trials for the study (budget)")]
def _positive_seconds(value: float | None) -> float | None:
    # A zero or negative budget would run nothing and exit 0, as if the study were done.
    if value is not None and not value > 0:
        raise typer.BadParameter(
            f"got {value:g}; expected a number of seconds > 0 (e.g. --timeout 3600), or leave it out for no "
            "time limit"
        )
    return value


TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="wall-time budget in seconds (> 0): no trial starts after it; a running trial stops at its "
        "next epoch (recorded as pruned)",
        callback=_positive_seconds,
    ),
]
NameOpt = Annotated[
    str | None, typer.Option("--study-name", help="name in storage (default: the study's name)")
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", envvar=OUT_ENV, help=f"trial output root (default runs/, or ${OUT_ENV})"),
]
ArtifactsOpt = Annotated[
    Path | None,
    typer.Option("--artifacts", envvar=ARTIFACTS_ENV, help=f"artifact folder (or ${ARTIFACTS_ENV})"),
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="override a config value: KEY=VALUE (repeatable)")
]
MaxEpochsOpt = Annotated[int | None, typer.Option("--max-epochs", min=1, help="cap every trial's epochs")]
ForceOpt = Annotated[bool, typer.Option("--force", help="resume even if the space or data changed")]
HeartbeatOpt = Annotated[int, typer.Option("--heartbeat", min=1, help="heartbeat interval in seconds")]
GraceOpt = Annotated[
    int, typer.Option("--grace", min=2, help="seconds without heartbeat before a trial is failed")
]
_SCALE_HELP = "named scale: full (the configured sizes) or laptop (images <= 128², every width / 4)"
ScaleOpt = Annotated[
    str | None,
    typer.Option("--scale", help=f"{_SCALE_HELP}; default: the config's own", show_default=False),
]
StudyScaleOpt = Annotated[
    str | None,
    typer.Option(
        "--scale",
        help=f"{_SCALE_HELP}; a study keeps the scale it was created at (default full; workers follow it)",
        show_default=False,
    ),
]
AllowEmptyMasksOpt = Annotated[
    bool,
    typer.Option(
        "--allow-empty-masks",
        help="accept a dataset whose masks are all empty (refused by default: nothing to segment)",
    ),
]
CompileOpt = Annotated[
    CompileMode | None, typer.Option("--compile", help="torch.compile (overrides the configs)")
]


def search_options(
    *, sets: list[str] | None = None, heartbeat: int = 30, grace: int = 90, **fields: Any
) -> SearchOptions:
    """The library's ``SearchOptions`` from a command's options, by keyword: ``--set`` parsed, heartbeat and
    grace as ``StorageOptions``, and whether the storage URL came from the environment."""
    from hpsearch.search.options import SearchOptions, parse_overrides
    from hpsearch.search.storage import StorageOptions

    return SearchOptions(
        **fields,
        overrides=parse_overrides(sets),
        storage_options=StorageOptions(heartbeat_interval=heartbeat, grace_period=max(grace, heartbeat + 1)),
        storage_from_env=fields["storage"] == os.environ.get(STORAGE_ENV),
    )


def worker_index_from_env() -> int:
    """Slurm array task or task rank, Kubernetes Indexed Job index, or a value from host and pid."""
    for var in WORKER_INDEX_ENVS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return (hash(socket.gethostname()) ^ os.getpid()) % 100_000
