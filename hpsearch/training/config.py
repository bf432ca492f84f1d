"""Validated run configuration: data, model, training. Loaded from YAML; errors name the file and the field.

The fully resolved ``RunConfig`` is what a trial stores, what ``hpsearch export`` writes, and what
``hpsearch train --config`` reads back unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hpsearch.errors import ConfigError
from hpsearch.training.metric_table import DEFAULT_METRIC, MetricName
from hpsearch.training.scale import DEFAULT_IMAGE_SIZE, FULL, SCALES, apply_scale


class StrictModel(BaseModel):
    """Base for config sections: unknown keys and wrong types are errors, assignments re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
    """Where the data is, how it is split and how it is fed to the model."""

    path: str | None = Field(
        default=None,
        description="dataset folder with images/ and masks/, in a file relative to the file's folder "
        "(CLI --data / HPSEARCH_DATA win)",
    )
    split_file: str | None = Field(
        default=None, description="folder with train.txt + test.txt/val.txt, or a split JSON"
    )
    val_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    split_seed: int = 0
    image_size: int = Field(default=DEFAULT_IMAGE_SIZE, ge=16, le=2048)
    augmentation: str = "basic"
    cache_dir: str | None = None
    num_workers: int | Literal["auto"] = "auto"
    augment_on: Literal["auto", "cpu", "device"] = Field(
        default="auto",
        description="where augmentation runs: 'device' uses the torch implementation of the preset on the "
        "training device; 'auto' picks device on CUDA for presets that have one, else cpu (albumentations)",
    )
    allow_empty_masks: bool = Field(
        default=False,
        description="accept a dataset whose masks are all empty (nothing to segment: Dice stays 0); "
        "without it such a dataset is refused as a likely mistake",
    )
    max_train_images: int | None = Field(default=None, ge=1, description="cap for quick runs")
    max_val_images: int | None = Field(default=None, ge=1, description="cap for quick runs")

    def prepared_key(self) -> str:
        """What identifies decoded train/val arrays: everything but how batches are augmented and fed.

        Trials that differ only in ``augmentation``, ``augment_on`` or ``num_workers`` share one decode.
        """
        return self.model_dump_json(exclude={"augmentation", "augment_on", "num_workers"})


class ModelConfig(StrictModel):
    """Model name from the registry plus its keyword arguments."""

    name: str = "unet"
    kwargs: dict[str, Any] = Field(default_factory=dict)


# Schedules that read ``warmup_epochs`` (see ``optim.SCHEDULERS``); a warm-up given to any other schedule
# would be stored with the trial while doing nothing. ``tests/test_train.py`` checks this list against the
# registry by stepping each schedule.
WARMUP_SCHEDULES = ("cosine",)

Monitor = MetricName  # hpsearch.training.metric_table


class TrainConfig(StrictModel):
    """Optimisation settings for ``fit``."""

    epochs: int = Field(default=25, ge=1)
    batch_size: int = Field(default=8, ge=1)
    optimizer: str = "adam"
    lr: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    scheduler: str = "none"
    warmup_epochs: int = Field(
        default=0, ge=0, description="linear warm-up; only the cosine schedule has one"
    )
    plateau_patience: int = Field(default=5, ge=0)
    plateau_factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    loss: str = "bce"
    loss_kwargs: dict[str, Any] = Field(default_factory=dict)
    grad_clip: float | None = Field(default=None, gt=0.0)
    device: str = "auto"
    amp: bool = Field(default=True, description="bf16 autocast on CUDA; on MPS only with mps_amp")
    mps_amp: bool = Field(
        default=False, description="bf16 autocast on Apple MPS where torch supports it there (else float32)"
    )
    monitor: Monitor = Field(
        default=DEFAULT_METRIC,
        description="validation metric that picks the best epoch and the kept checkpoint",
    )
    channels_last: bool = True
    compile: Literal["auto", "on", "off"] = "auto"
    seed: int = 0
    max_steps_per_epoch: int | None = Field(default=None, ge=1, description="cap for quick runs")
    gallery_k: int = Field(default=4, ge=0)

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_words(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `on`/`off` (in a file or in --set train.compile=off) as a boolean.
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @model_validator(mode="after")
    def _check_warmup(self) -> TrainConfig:
        if self.warmup_epochs == 0:
            return self
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be < epochs ({self.epochs})")
        if self.scheduler not in WARMUP_SCHEDULES:
            raise ValueError(
                f"warmup_epochs={self.warmup_epochs} has no effect with scheduler '{self.scheduler}' (only "
                f"{', '.join(WARMUP_SCHEDULES)} warms up); set train.scheduler to "
                f"{' or '.join(WARMUP_SCHEDULES)}, or train.warmup_epochs to 0"
            )
        return self


class RunConfig(StrictModel):
    """One training run: what ``hpsearch train --config`` consumes and ``hpsearch export`` writes."""

    @field_validator("scale")
    @classmethod
    def _known_scale(cls, value: str) -> str:
        SCALES.get(value)  # a miss lists the valid names
        return value

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    scale: str = Field(
        default=FULL,
        description="the named scale the config was made at (hpsearch.training.scale); sizes already applied",
    )
    provenance: dict[str, Any] | None = Field(
        default=None, description="where this config came from (study, trial, value); informational"
    )


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line: ``source: field.path: message (got value)`` for the first error, plus a count."""
    errs = exc.errors()
    first = errs[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    got = first.get("input")
    got_txt = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
    more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{source}: field '{loc}': {msg}{got_txt}{more}"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, raising ConfigError that names the file on any problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist; pass the path of a YAML file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}: YAML syntax error{where}: {problem}; fix the file and retry") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


def parse_run_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a mapping as a RunConfig; errors name ``source`` and the field."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(path: str | Path) -> RunConfig:
    """Load and validate a run config YAML (or JSON, which is YAML) file.

    A relative ``data.path`` is read relative to the file's folder (as ``dump_config`` writes it), so a
    config moved together with its data folder still finds it.
    """
    cfg = parse_run_config(read_yaml(path), source=str(path))
    if cfg.data.path and not Path(cfg.data.path).expanduser().is_absolute():
        cfg.data.path = str((Path(path).parent / cfg.data.path).resolve())
    return cfg


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.epochs=2", "data.augmentation=none"]`` -> {path: YAML-parsed value}."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set '{item}' is not KEY=VALUE; e.g. --set train.epochs=2")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set '{item}': the value is not valid YAML") from None
    return out


def portable_payload(config: RunConfig, base: str | Path) -> dict[str, Any]:
    """The config as JSON-safe data for a file written in ``base``: ``data.path`` relative to that folder,
    so that the file carries no machine's folders."""
    from hpsearch.data.io import portable_path

    payload = config.model_dump(mode="json")
    if config.data.path:
        payload["data"]["path"] = portable_path(config.data.path, base)
    return payload


def dump_config(config: RunConfig, path: str | Path, *, fmt: Literal["yaml", "json"] = "yaml") -> Path:
    """Write a config so that ``load_config`` reads back an equal object (``data.path`` resolved)."""
    import json

    from hpsearch.training.outputs import atomic_output

    p = Path(path)
    payload = portable_payload(config, p.parent)
    text = json.dumps(payload, indent=2) + "\n" if fmt == "json" else yaml.safe_dump(payload, sort_keys=False)
    with atomic_output(p, what="config") as tmp:
        tmp.write_text(text)
    return p


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``: a config tree as dotted paths (the inverse of ``set_path``)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def is_under(path: str, prefixes: Sequence[str]) -> bool:
    """Whether dotted ``path`` is one of ``prefixes`` or inside one (``model.kwargs.depth`` in ``model``)."""
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def config_differences(
    a: Mapping[str, Any], b: Mapping[str, Any], *, skip: Sequence[str] = (), missing: Any = None
) -> dict[str, tuple[Any, Any]]:
    """Dotted path -> (value in ``a``, value in ``b``) for every leaf where two config trees disagree.

    A path only one tree has stands as ``missing`` on the other side (compared and reported so). A path that
    is an entry of ``skip`` or lies under one (``provenance`` covers ``provenance.storage``) is left out:
    what the caller knows differs by construction (a trial's seed, where a run's data lives).
    """
    fa, fb = flatten(a), flatten(b)
    return {
        path: (fa.get(path, missing), fb.get(path, missing))
        for path in sorted(fa.keys() | fb.keys())
        if fa.get(path, missing) != fb.get(path, missing) and not is_under(path, skip)
    }


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``dotted='a.b'``, creating dicts on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set '{dotted}': '{key}' is not a section")
    node[leaf] = value


def resolve_run_config(
    base: Mapping[str, Any] | RunConfig | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
    data_path: str | Path | None = None,
    seed: int | None = None,
    max_epochs: int | None = None,
    scale: str | None = None,
    source: str = "config",
) -> RunConfig:
    """The one place a run config is put together. Later layers win:

    1. defaults (the ``RunConfig`` fields);
    2. ``base``: a study's ``fixed`` part or a config file;
    3. ``params``: values sampled by a trial (dotted paths);
    4. ``overrides``: ``--set KEY=VALUE`` (dotted paths);
    5. explicit options: ``device`` (``--device``), ``data_path`` (the resolved ``--data``), ``seed``;
    6. ``scale`` (``--scale``): shrinks image side and channel widths once (``hpsearch.training.scale``);
       ``None`` keeps the scale the config records;
    7. caps: ``max_epochs`` lowers ``train.epochs`` (and a warm-up that would no longer fit).

    A value the sampler chose is never silently replaced, so a trial's stored parameters always describe
    what trained: overriding a sampled path, or capping the epochs of a study that samples them, is an error.
    """
    params = dict(params or {})
    overrides = dict(overrides or {})
    clash = sorted(set(params) & set(overrides))
    if clash:
        raise ConfigError(
            f"{source}: --set {', '.join(clash)} would replace what the search samples; "
            "drop the --set, or fix the value in the study's `fixed` section and remove it from `space`"
        )
    if max_epochs is not None and ("train.epochs" in params or "train.warmup_epochs" in params):
        raise ConfigError(
            f"{source}: --max-epochs {max_epochs} would cap the training length, which this study searches "
            "(train.epochs or train.warmup_epochs; the trial would store a value it never trained with); "
            "narrow the study's `space` instead, or drop --max-epochs"
        )
    if max_epochs is not None and max_epochs < 1:
        raise ConfigError(f"--max-epochs must be >= 1 (got {max_epochs})")
    if isinstance(base, RunConfig):
        tree = base.model_dump(mode="json")
    else:
        tree = copy.deepcopy(dict(base or {}))
    explicit = {"train.device": device, "data.path": data_path and str(data_path), "train.seed": seed}
    layers = {**params, **overrides, **{k: v for k, v in explicit.items() if v is not None}}
    for key, value in layers.items():
        set_path(tree, key, value)
    tree = apply_scale(tree, scale, source=source)
    cfg = parse_run_config(tree, source=source)
    if max_epochs is not None and cfg.train.epochs > max_epochs:
        cfg.train.warmup_epochs = min(cfg.train.warmup_epochs, max_epochs - 1)
        cfg.train.epochs = max_epochs
    return cfg
