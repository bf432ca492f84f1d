"""Checks that run before anything trains (comparable columns, one test set, no leakage) and on every result
(IoU <= Dice, a warning for a test Dice high enough to audit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError, DataError, HpsearchError
from hpsearch.reproduce.columns import CONTRASTS, RUN_ENVIRONMENT, VARIATIONS
from hpsearch.training.config import RunConfig, config_differences

Log = Callable[[str], None]

# An audit threshold chosen by this project (not a published bound): a from-scratch model above it on a
# sealed test set is more often a leak (split, cache, duplicated images) than a result.
SUSPICIOUS_DICE = 0.90


class SanityError(HpsearchError):
    """A reproduce result broke an invariant (leakage, IoU > Dice, wrong test stems)."""


def check_no_leakage(split: Any, train_used: Iterable[str] | None = None) -> None:
    """Raise ``SanityError`` if a test stem is also in train or val, or a val stem in train.

    ``split`` is anything with ``train``, ``val`` and ``test`` stem collections (a ``Split``, or a plain
    namespace in tests: ``Split`` itself already refuses overlapping parts). ``train_used`` are the stems
    that will actually be trained on (after ``max_train_images``); they must come from ``split.train``.
    """
    train, val, test = set(split.train), set(split.val), set(split.test)
    used = set(train_used) if train_used is not None else train
    problems = []
    for name, part in (("train", train | used), ("val", val)):
        both = sorted(part & test)
        if both:
            problems.append(f"{len(both)} test stem(s) also in {name}: {', '.join(both[:5])}")
    both = sorted((train | used) & val)
    if both:
        problems.append(f"{len(both)} val stem(s) also in train: {', '.join(both[:5])}")
    stray = sorted(used - train)
    if stray:
        problems.append(f"{len(stray)} trained stem(s) not in the split's train part: {', '.join(stray[:5])}")
    if not test:
        problems.append("the test part is empty")
    if problems:
        raise SanityError("split leakage: " + "; ".join(problems) + "; refusing to train")


def check_iou_le_dice(label: str, dice: float, iou: float) -> None:
    """Per image IoU = D / (2 - D) <= D, so every mean IoU is <= its mean Dice; raise if not."""
    if not (math.isfinite(dice) and math.isfinite(iou)):
        raise SanityError(f"{label}: non-finite metrics (Dice {dice}, IoU {iou})")
    if iou > dice + 1e-9:
        raise SanityError(f"{label}: IoU {iou:.6f} > Dice {dice:.6f}, which no per-image pair allows")


def leakage_warning(label: str, dice: float, threshold: float = SUSPICIOUS_DICE) -> str | None:
    """The warning text when a test Dice is above ``threshold``, else None."""
    if dice > threshold:
        return (
            f"WARNING: {label}: test Dice {dice:.4f} > {threshold:.2f}, this project's audit threshold for a "
            "model trained from scratch; audit for leakage (split, cache, duplicated images) before "
            "reporting it"
        )
    return None


def warn_if_suspicious(label: str, dice: float, *, log: Log = print) -> str | None:
    """Log (print) ``leakage_warning`` when it applies; returns the text."""
    msg = leakage_warning(label, dice)
    if msg:
        log(msg)
    return msg


def split_or_reason(cfg: RunConfig, data_dir: Path, pairs: list | None = None) -> tuple[Any, str]:
    """The config's split of this data folder, or (None, why the split does not apply to it)."""
    from hpsearch.data.splits import split_for

    try:
        _, split = split_for(cfg.data, data_dir, pairs=pairs)
    except DataError as exc:
        return None, str(exc)
    return split, ""


def check_same_test_set(cfgs: Mapping[str, RunConfig], data_dir: Path, pairs: list | None = None) -> Any:
    """Every column must be tested on the same images; checked before anything trains. Returns the split."""
    from hpsearch.data.check import verify_dataset

    pairs = pairs if pairs is not None else verify_dataset(data_dir)
    splits = {k: split_or_reason(c, data_dir, pairs) for k, c in cfgs.items()}
    bad = [k for k, (s, _) in splits.items() if s is None]
    if bad:
        raise DataError(f"column '{bad[0]}': {splits[bad[0]][1]}")
    first = next(iter(splits))
    differ = [k for k, (s, _) in splits.items() if s.test != splits[first][0].test]
    if differ:
        raise SanityError(
            f"column(s) {', '.join(differ)} would be tested on other images than column '{first}'; all "
            "columns must use the same split settings (data.split_file, val/test_fraction, split_seed) so "
            "the table compares like with like"
        )
    return splits[first][0]


def effective_model_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """The model's options as it will build: those left out filled with the model's defaults."""
    from hpsearch.models import MODELS

    return {**MODELS.defaults(cfg.model.name), **cfg.model.kwargs}


def _effective(cfg: RunConfig) -> dict[str, Any]:
    """The config as it will build, so an exported config without ``depth`` and a column file with
    ``depth: 4`` are the same model."""
    tree = cfg.model_dump(mode="json")
    tree["model"]["kwargs"] = effective_model_kwargs(cfg)
    return tree


def column_differences(a: RunConfig, b: RunConfig) -> dict[str, tuple[Any, Any]]:
    """Dotted field -> (value in a, value in b) for every field in which two columns' configs, as they will
    build, differ; run-environment fields (``RUN_ENVIRONMENT``) aside."""
    return config_differences(_effective(a), _effective(b), skip=RUN_ENVIRONMENT)


def check_comparable(cfgs: Mapping[str, RunConfig], sources: Mapping[str, str] | None = None) -> None:
    """Refuse columns that differ in anything but what they are meant to vary (``CONTRASTS``).

    The U-Net and the CBAM U-Net of one recipe may differ only in the model; the two recipes of one model
    only in the recipe (never image size, width or data caps); the wider/deeper U-Net only in its size.
    """
    sources = sources or {}
    for a, b, varies in CONTRASTS:
        if a not in cfgs or b not in cfgs:
            continue
        variation = VARIATIONS[varies]
        wrong = {f: v for f, v in column_differences(cfgs[a], cfgs[b]).items() if not variation.allows(f)}
        if wrong:
            shown = "; ".join(f"{f}: {va!r} vs {vb!r}" for f, (va, vb) in list(wrong.items())[:4])
            where = f" ({sources[a]} vs {sources[b]})" if a in sources and b in sources else ""
            raise ConfigError(
                f"columns '{a}' and '{b}'{where} may differ only in {variation.description}, but they "
                f"also differ in {shown}; make those fields equal in both configs so the table compares "
                "one change at a time"
            )
