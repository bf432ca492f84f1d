"""The table's columns: which config each one trains, what each pair of columns is meant to vary, and the
config changes reproduce makes (quick mode, caps, seeds), all assembled by ``resolve_run_config``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError
from hpsearch.training.config import RunConfig, is_under, load_config, resolve_run_config

QUICK_EPOCHS = 2
QUICK_IMAGE_SIZE = 64
QUICK_MAX_TRAIN = 16
QUICK_BATCH = 4
# Quick mode on data the shipped split was not made for (e.g. `hpsearch data synth` output).
QUICK_RANDOM_SPLIT = {"split_file": None, "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}


@dataclass(frozen=True)
class Column:
    """One column of the table: its key (CLI, folder name), label, config file and training recipe."""

    key: str
    label: str
    config_file: str
    recipe: str  # "baseline" (the report's first recipe) or "tuned"


# Order: the 2 x 2 of recipe x architecture, then the report's wider/deeper U-Net.
COLUMNS: dict[str, Column] = {
    c.key: c
    for c in (
        Column("unet", "U-Net", "report_baseline.yaml", "baseline"),
        Column("unet_cbam", "CBAM U-Net, baseline recipe", "report_baseline_cbam.yaml", "baseline"),
        Column("tuned", "tuned U-Net", "tuned_unet.yaml", "tuned"),
        Column("tuned_cbam", "tuned CBAM U-Net", "tuned_cbam_unet.yaml", "tuned"),
        Column("wide_deep", "wider/deeper U-Net", "report_wide_deep.yaml", "baseline"),
    )
}

# Fields that say where and how fast a run goes, or which noise it draws, not what it learns: never compared
# between columns.
RUN_ENVIRONMENT = (
    "provenance",
    "data.path",
    "data.cache_dir",
    "data.num_workers",
    "data.augment_on",
    "train.device",
    "train.compile",
    "train.gallery_k",
    # A seed is a draw of noise, not a treatment: an export keeps its trial's seed (study seed + trial
    # number), and `--seeds N` runs every column at its config's seed + 0..N-1.
    "train.seed",
)
# The training recipe: what the report's tuning changed. Image size, model size and data caps are not in it.
RECIPE_FIELDS = (
    "data.augmentation",
    "train.epochs",
    "train.batch_size",
    "train.optimizer",
    "train.lr",
    "train.weight_decay",
    "train.momentum",
    "train.nesterov",
    "train.scheduler",
    "train.warmup_epochs",
    "train.plateau_patience",
    "train.plateau_factor",
    "train.loss",
    "train.loss_kwargs",
    "train.grad_clip",
)
SIZE_FIELDS = ("model.kwargs.base_width", "model.kwargs.depth")


@dataclass(frozen=True)
class Variation:
    """What a pair of columns may differ in: a description for errors, and the test for one field."""

    description: str
    allows: Callable[[str], bool]


VARIATIONS: dict[str, Variation] = {
    "architecture": Variation(
        "the model (model.name and its attention settings, not base_width or depth)",
        lambda f: is_under(f, ("model",)) and not is_under(f, SIZE_FIELDS),
    ),
    "recipe": Variation(
        "the training recipe (" + ", ".join(RECIPE_FIELDS) + ")", lambda f: is_under(f, RECIPE_FIELDS)
    ),
    "size": Variation("the model size (" + ", ".join(SIZE_FIELDS) + ")", lambda f: is_under(f, SIZE_FIELDS)),
}

# (column a, column b, what they are meant to vary). Checked for every pair whose columns both run.
CONTRASTS: tuple[tuple[str, str, str], ...] = (
    ("unet", "unet_cbam", "architecture"),
    ("tuned", "tuned_cbam", "architecture"),
    ("unet", "tuned", "recipe"),
    ("unet_cbam", "tuned_cbam", "recipe"),
    ("unet", "wide_deep", "size"),
)


def default_config_dir() -> Path:
    """The repository's ``configs/`` (editable install), else ``./configs``."""
    repo = Path(__file__).resolve().parents[2] / "configs"
    return repo if repo.is_dir() else Path("configs")


def parse_columns(values: Sequence[str] | None) -> list[str]:
    """``["unet,tuned", "tuned_cbam"]`` -> column keys in table order, deduplicated (all when empty)."""
    if not values:
        return list(COLUMNS)
    keys: set[str] = set()
    for value in values:
        for part in value.split(","):
            key = part.strip()
            if key and key not in COLUMNS:
                raise ConfigError(f"unknown column '{key}'; expected some of: {', '.join(COLUMNS)}")
            if key:
                keys.add(key)
    if not keys:
        raise ConfigError(f"--columns is empty; expected some of: {', '.join(COLUMNS)}")
    return [k for k in COLUMNS if k in keys]


def with_cbam(cfg: RunConfig, source: str) -> RunConfig:
    """``cfg`` with ``model.name: cbam_unet``: the tuned CBAM column derived from an exported U-Net config."""
    from hpsearch.data.io import portable_path

    # A shipped file by its place in the repository: the provenance (part of a run's identity) then reads
    # the same on every machine.
    shown = portable_path(source, Path.cwd(), shipped=True)
    provenance = {**(cfg.provenance or {}), "derived": f"{shown} with model.name cbam_unet"}
    overrides = {"model.name": "cbam_unet", "provenance": provenance}
    return resolve_run_config(cfg, overrides=overrides, source=f"{source} (as cbam_unet)")


def load_column_configs(
    columns: Sequence[str], *, config_dir: Path | None = None, tuned_config: Path | None = None
) -> dict[str, tuple[RunConfig, str]]:
    """Each column's config and where it came from. ``tuned_config`` replaces both tuned columns."""
    cdir = Path(config_dir) if config_dir else default_config_dir()
    tuned = None
    if tuned_config is not None:
        tuned = load_config(tuned_config)
        if tuned.model.name != "unet":
            raise ConfigError(
                f"{tuned_config}: model.name is '{tuned.model.name}'; --tuned-config must be a plain U-Net "
                "config (model.name: unet); the tuned CBAM column is derived from it"
            )
    out: dict[str, tuple[RunConfig, str]] = {}
    for key in columns:
        if tuned is not None and key == "tuned":
            out[key] = (tuned, str(tuned_config))
        elif tuned is not None and key == "tuned_cbam":
            out[key] = (with_cbam(tuned, str(tuned_config)), f"{tuned_config} (model.name cbam_unet)")
        else:
            path = cdir / COLUMNS[key].config_file
            if not path.is_file():
                raise ConfigError(
                    f"config '{path}' for column '{key}' does not exist; pass --config-dir with the folder "
                    "that holds the repository's configs/"
                )
            out[key] = (load_config(path), str(path))
    return out


def quick_config(
    cfg: RunConfig, *, epochs: int = QUICK_EPOCHS, max_train_images: int = QUICK_MAX_TRAIN
) -> RunConfig:
    """The column shrunk to seconds on a CPU: 64 px, no augmentation, a tiny model, 1-2 epochs.

    The model keeps its name and its size relative to the baseline: base_width 8 * (width / 64) and
    depth - 2, so the baseline becomes (8, 2) and the wider/deeper U-Net (12, 3). Every column shrinks by the
    same rule, so columns that differed only in their recipe, model or size still differ only in that.
    """
    kw = cfg.model.kwargs
    overrides: dict[str, Any] = {
        "model.kwargs.base_width": max(4, round(8 * int(kw.get("base_width", 64)) / 64)),
        "model.kwargs.depth": max(1, min(3, int(kw.get("depth", 4)) - 2)),
        "data.image_size": QUICK_IMAGE_SIZE,
        "data.augmentation": "none",
        "data.max_train_images": max_train_images,
        "train.batch_size": min(cfg.train.batch_size, QUICK_BATCH),
        "train.compile": "off",
        "train.gallery_k": 0,  # the test worst.png comes from evaluate; no val gallery needed
    }
    # Like --epochs elsewhere, a cap: never longer than the config (the resolver also shortens warm-up).
    return resolve_run_config(cfg, overrides=overrides, max_epochs=epochs, source="quick config")


def column_config(
    cfg: RunConfig,
    *,
    seed: int | None = None,
    device: str | None = None,
    epochs: int | None = None,
    max_train_images: int | None = None,
    compile_mode: str | None = None,
    split: dict[str, Any] | None = None,
) -> RunConfig:
    """Reproduce's options applied to a column's config: seed, device, an epoch cap (warm-up shortened to
    fit), a train-image cap, compile mode and split settings. The resolver does the assembling.
    """
    overrides: dict[str, Any] = {f"data.{k}": v for k, v in (split or {}).items()}
    if max_train_images is not None:
        overrides["data.max_train_images"] = max_train_images
    if compile_mode:
        overrides["train.compile"] = compile_mode
    return resolve_run_config(
        cfg, overrides=overrides, device=device, seed=seed, max_epochs=epochs, source="reproduce options"
    )
