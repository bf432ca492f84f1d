"""``hpsearch reproduce``: the report's four-column table, retrained and measured on a sealed test set.

Columns: the report's U-Net baseline, its wider/deeper U-Net, the optimized U-Net and the optimized settings
with CBAM. Each column is a run config file in ``configs/`` (so it also runs alone with ``hpsearch train``
and ``hpsearch evaluate``). Every run selects its best epoch on a validation carve of the training images;
the test images are only read afterwards, once per run, by ``evaluate_checkpoint`` (per-image Dice and IoU at
threshold 0.5, at the original mask resolution). The output folder gets ``results.json``, ``results.md``,
each column's ``worst.png`` and every run's ``curves.png``.

Sanity checks: the split is checked for leakage before any training, the evaluated stems must be exactly
the test stems, IoU <= Dice is enforced for every reported pair, and a test Dice above 0.90 (beyond what a
from-scratch U-Net reaches on this split) prints a warning to audit for leakage.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError, DataError, HpsearchError
from hpsearch.training.config import RunConfig, dump_config, load_config, parse_run_config

Log = Callable[[str], None]

SUSPICIOUS_DICE = 0.90
QUICK_EPOCHS = 2
QUICK_IMAGE_SIZE = 64
QUICK_MAX_TRAIN = 16
QUICK_BATCH = 4
# Quick mode on data the shipped split was not made for (e.g. `hpsearch data synth` output).
QUICK_RANDOM_SPLIT = {"split_file": None, "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}


@dataclass(frozen=True)
class Column:
    """One column of the report's table: its config file and the numbers the report claims for it."""

    key: str
    label: str
    config_file: str
    claimed_iou: float
    claimed_dice: float


COLUMNS: dict[str, Column] = {
    c.key: c
    for c in (
        Column("unet", "U-Net", "report_baseline.yaml", 0.68, 0.71),
        Column("wide_deep", "wider/deeper U-Net", "report_wide_deep.yaml", 0.60, 0.71),
        Column("tuned", "optimized U-Net", "tuned_unet.yaml", 0.75, 0.78),
        Column("cbam", "U-Net + CBAM", "tuned_cbam_unet.yaml", 0.81, 0.85),
    )
}

# Per-image Dice/IoU pairs measured on this split, for judging the report's pairs (see claim_check).
MEASURED_PAIRS: tuple[tuple[str, float, float], ...] = (
    ("reference recipe, U-Net, 80 epochs (stand-alone script, 1 seed)", 0.834, 0.755),
    ("reference recipe, CBAM U-Net, 50 epochs (stand-alone script, 1 seed)", 0.798, 0.704),
    ("published U-Net", 0.826, 0.747),
    ("published U-Net++", 0.823, 0.742),
    ("published PraNet (pretrained backbone)", 0.894, 0.830),
)


class SanityError(HpsearchError):
    """A reproduce result broke an invariant (leakage, IoU > Dice, wrong test stems)."""


# --------------------------------------------------------------------------------------------- checks


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
            f"WARNING: {label}: test Dice {dice:.4f} > {threshold:.2f}, above published from-scratch results "
            "on this split (U-Net 0.826; PraNet with a pretrained backbone 0.894); audit for leakage "
            "(split, cache, duplicated images) before reporting it"
        )
    return None


def warn_if_suspicious(label: str, dice: float, *, log: Log = print) -> str | None:
    """Log (print) ``leakage_warning`` when it applies; returns the text."""
    msg = leakage_warning(label, dice)
    if msg:
        log(msg)
    return msg


def claim_check(dice: float, iou: float, *, rounding: float = 0.005) -> dict[str, float | str | bool]:
    """Where a claimed (mean Dice, mean IoU) pair sits in the range that per-image means allow.

    Per image IoU = D / (2 - D). That map is convex on [0, 1] and lies under the diagonal, so for means over
    images: mean Dice / (2 - mean Dice) <= mean IoU <= mean Dice (Jensen below; IoU <= Dice above). The lower
    bound is reached when every image has the same Dice, the upper one only when every image scores 0 or 1.
    ``position`` is where the IoU sits between the two (0 = lower, 1 = upper); ``position_min`` is its
    smallest value when both numbers may be off by ``rounding``.
    """
    lo = dice / (2 - dice)
    possible = lo - 1e-9 <= iou <= dice + 1e-9
    span = dice - lo
    position = (iou - lo) / span if span > 0 else float("nan")
    corners = []
    for dd in (dice - rounding, dice + rounding):
        for ii in (iou - rounding, iou + rounding):
            lo_c = dd / (2 - dd)
            if dd - lo_c > 0:
                corners.append((ii - lo_c) / (dd - lo_c))
    return {
        "dice": dice,
        "iou": iou,
        "iou_if_uniform": lo,
        "iou_max": dice,
        "possible": possible,
        "position": position,
        "position_min": min(corners) if corners else position,
    }


# ------------------------------------------------------------------------------------ configurations


def default_config_dir() -> Path:
    """The repository's ``configs/`` (editable install), else ``./configs``."""
    repo = Path(__file__).resolve().parents[2] / "configs"
    return repo if repo.is_dir() else Path("configs")


def parse_columns(values: Sequence[str] | None) -> list[str]:
    """``["unet,tuned", "cbam"]`` -> ordered, deduplicated column keys (all four when empty)."""
    if not values:
        return list(COLUMNS)
    keys: list[str] = []
    for value in values:
        for part in value.split(","):
            key = part.strip()
            if not key:
                continue
            if key not in COLUMNS:
                raise ConfigError(f"unknown column '{key}'; expected some of: {', '.join(COLUMNS)}")
            if key not in keys:
                keys.append(key)
    if not keys:
        raise ConfigError(f"--columns is empty; expected some of: {', '.join(COLUMNS)}")
    return [k for k in COLUMNS if k in keys]


def _edit(cfg: RunConfig, edit: Callable[[dict[str, Any]], None], source: str) -> RunConfig:
    """Apply ``edit`` to the config as a dict and re-validate (so cross-field rules are checked once)."""
    d = cfg.model_dump(mode="json")
    edit(d)
    return parse_run_config(d, source=source)


def cbam_from_tuned(cfg: RunConfig, source: str) -> RunConfig:
    """The optimized settings with ``model.name: cbam_unet`` (column 4 derived from column 3)."""

    def edit(d: dict[str, Any]) -> None:
        d["model"]["name"] = "cbam_unet"
        prov = dict(d.get("provenance") or {})
        d["provenance"] = {**prov, "derived": f"{source} with model.name cbam_unet"}

    return _edit(cfg, edit, f"{source} (as cbam_unet)")


def load_column_configs(
    columns: Sequence[str], *, config_dir: Path | None = None, tuned_config: Path | None = None
) -> dict[str, tuple[RunConfig, str]]:
    """Each column's config and where it came from. ``tuned_config`` replaces columns 3 and 4."""
    cdir = Path(config_dir) if config_dir else default_config_dir()
    tuned = None
    if tuned_config is not None:
        tuned = load_config(tuned_config)
        if tuned.model.name != "unet":
            raise ConfigError(
                f"{tuned_config}: model.name is '{tuned.model.name}'; --tuned-config must be a plain U-Net "
                "config (model.name: unet); the CBAM column is derived from it"
            )
    out: dict[str, tuple[RunConfig, str]] = {}
    for key in columns:
        col = COLUMNS[key]
        if tuned is not None and key == "tuned":
            out[key] = (tuned, str(tuned_config))
            continue
        if tuned is not None and key == "cbam":
            out[key] = (cbam_from_tuned(tuned, str(tuned_config)), f"{tuned_config} (model.name cbam_unet)")
            continue
        path = cdir / col.config_file
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
    depth - 2, so the baseline becomes (8, 2) and the wider/deeper U-Net (12, 3).
    """

    epochs = min(epochs, cfg.train.epochs)  # like --epochs elsewhere, a cap: never longer than the config

    def edit(d: dict[str, Any]) -> None:
        kw = d["model"]["kwargs"]
        kw["base_width"] = max(4, round(8 * int(kw.get("base_width", 64)) / 64))
        kw["depth"] = max(1, min(3, int(kw.get("depth", 4)) - 2))
        d["data"].update(image_size=QUICK_IMAGE_SIZE, augmentation="none", max_train_images=max_train_images)
        t = d["train"]
        t.update(
            epochs=epochs,
            warmup_epochs=min(int(t.get("warmup_epochs", 0)), epochs - 1),
            batch_size=min(int(t["batch_size"]), QUICK_BATCH),
            compile="off",
            gallery_k=0,  # the test worst.png comes from evaluate; no val gallery needed
        )

    return _edit(cfg, edit, "quick config")


def apply_overrides(
    cfg: RunConfig,
    *,
    seed: int | None = None,
    device: str | None = None,
    epochs: int | None = None,
    max_train_images: int | None = None,
    compile_mode: str | None = None,
    split: dict[str, Any] | None = None,
) -> RunConfig:
    """Seed, device, an epoch cap (warm-up shortened to fit), a train-image cap, compile mode, split."""

    def edit(d: dict[str, Any]) -> None:
        t = d["train"]
        if seed is not None:
            t["seed"] = seed
        if device:
            t["device"] = device
        if epochs is not None and epochs < t["epochs"]:
            t["epochs"] = epochs
            t["warmup_epochs"] = min(int(t.get("warmup_epochs", 0)), epochs - 1)
        if compile_mode:
            t["compile"] = compile_mode
        if max_train_images is not None:
            d["data"]["max_train_images"] = max_train_images
        if split is not None:
            d["data"].update(split)

    return _edit(cfg, edit, "reproduce overrides")


def split_test_stems(
    cfg: RunConfig, data_dir: Path, pairs: list | None = None
) -> tuple[tuple[str, ...] | None, str]:
    """The config's test stems on this data folder, or (None, why the split does not apply)."""
    from hpsearch.data.check import verify_dataset
    from hpsearch.data.splits import make_split, resolve_split_file

    try:
        split = make_split(
            pairs if pairs is not None else verify_dataset(data_dir),
            split_file=resolve_split_file(cfg.data.split_file, data_dir),
            val_fraction=cfg.data.val_fraction,
            test_fraction=cfg.data.test_fraction,
            seed=cfg.data.split_seed,
        )
    except DataError as exc:
        return None, str(exc)
    return split.test, ""


def check_same_test_set(cfgs: dict[str, RunConfig], data_dir: Path, pairs: list | None = None) -> None:
    """Every column must be tested on the same images; checked before anything trains."""
    from hpsearch.data.check import verify_dataset

    pairs = pairs if pairs is not None else verify_dataset(data_dir)
    tests = {k: split_test_stems(c, data_dir, pairs) for k, c in cfgs.items()}
    bad = [k for k, (t, _) in tests.items() if t is None]
    if bad:
        raise DataError(f"column '{bad[0]}': {tests[bad[0]][1]}")
    first = next(iter(tests))
    differ = [k for k, (t, _) in tests.items() if t != tests[first][0]]
    if differ:
        raise SanityError(
            f"column(s) {', '.join(differ)} would be tested on other images than column '{first}'; all "
            "columns must use the same split settings (data.split_file, val/test_fraction, split_seed) so "
            "the table compares like with like"
        )


# ------------------------------------------------------------------------------------------ the run


def _sd(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _data_key(cfg: RunConfig) -> str:
    """Configs with equal keys share one ``prepare_data`` (split + decoded arrays)."""
    d = cfg.data.model_dump(mode="json")
    for name in ("path", "augmentation", "augment_on", "num_workers"):
        d.pop(name, None)
    return json.dumps(d, sort_keys=True)


def _evaluated_stems(per_case_csv: Path) -> list[str]:
    with per_case_csv.open(newline="") as fh:
        return [row["stem"] for row in csv.DictReader(fh)]


def _provenance_note(cfg: RunConfig) -> str:
    prov = cfg.provenance or {}
    if "study" in prov and "trial" in prov:
        metric = prov.get("metric", "metric")
        value = prov.get("value")
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        return f"study '{prov['study']}', trial {prov['trial']} ({metric} {shown})"
    if prov.get("source"):
        return str(prov["source"])
    return "config file"


def host_description(device: str | None) -> str:
    """The training device as ``describe_device`` names it, plus the host."""
    from hpsearch.training.device import describe_device, resolve_device

    dev = describe_device(resolve_device(device or "auto"))
    return f"{dev}; host {platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"


def reproduce(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    columns: Sequence[str] | None = None,
    seeds: int = 1,
    quick: bool = False,
    device: str | None = None,
    epochs: int | None = None,
    max_train_images: int | None = None,
    config_dir: str | Path | None = None,
    tuned_config: str | Path | None = None,
    compile_mode: str | None = None,
    progress: bool | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Train and test every column for ``seeds`` seeds; write results.json/results.md; return the results."""
    from hpsearch.data.check import verify_dataset
    from hpsearch.training.device import release_memory, resolve_device
    from hpsearch.training.evaluate import evaluate_checkpoint
    from hpsearch.training.runner import PreparedData, prepare_data, train_from_config
    from hpsearch.training.validate import check_registry_names

    if seeds < 1:
        raise ConfigError(f"--seeds is {seeds}; expected 1 or more")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs is {epochs}; expected 1 or more")
    if compile_mode not in (None, "auto", "on", "off"):
        raise ConfigError(f"--compile '{compile_mode}' is not one of: auto, on, off")
    ddir = Path(data_dir).expanduser().resolve()
    out = Path(out_dir)
    keys = parse_columns(columns)
    resolve_device(device or "auto")  # fail early on an unavailable device
    base = load_column_configs(
        keys,
        config_dir=Path(config_dir) if config_dir else None,
        tuned_config=Path(tuned_config) if tuned_config else None,
    )

    # Shrink (quick), then check that the split applies to this data before anything trains.
    cfgs: dict[str, RunConfig] = {}
    for key, (cfg, source) in base.items():
        check_registry_names(cfg, source=source)
        if quick:
            cfg = quick_config(
                cfg, epochs=epochs or QUICK_EPOCHS, max_train_images=max_train_images or QUICK_MAX_TRAIN
            )
        cfgs[key] = apply_overrides(
            cfg, device=device, epochs=epochs, max_train_images=max_train_images, compile_mode=compile_mode
        )
    split_note = None
    first = cfgs[keys[0]]
    pairs = verify_dataset(ddir)
    _, why = split_test_stems(first, ddir, pairs)
    if why:
        if not quick:
            raise DataError(
                f"{why}. `hpsearch reproduce` measures the report's table on the data its split was made "
                f"for (Kvasir-SEG for '{first.data.split_file}'); use --quick to exercise the pipeline on "
                "other data"
            )
        split_note = (
            f"the data folder does not fit the configs' split '{first.data.split_file}' "
            f"({why.split(': ', 1)[0]}); quick mode "
            f"used a seeded random split instead (val_fraction {QUICK_RANDOM_SPLIT['val_fraction']}, "
            f"test_fraction {QUICK_RANDOM_SPLIT['test_fraction']}, seed {QUICK_RANDOM_SPLIT['split_seed']})"
        )
        log(f"note: {split_note}")
        cfgs = {k: apply_overrides(c, split=QUICK_RANDOM_SPLIT) for k, c in cfgs.items()}
    check_same_test_set(cfgs, ddir, pairs)

    out.mkdir(parents=True, exist_ok=True)
    prepared: dict[str, PreparedData] = {}
    test_set: tuple[str, ...] | None = None
    warnings: list[str] = []
    col_results: dict[str, Any] = {}
    t_all = time.perf_counter()
    split_info: dict[str, Any] = {}

    for key in keys:
        col = COLUMNS[key]
        cfg0 = cfgs[key]
        runs: list[dict[str, Any]] = []
        cdir = out / key
        cdir.mkdir(parents=True, exist_ok=True)
        for s in range(seeds):
            seed = cfg0.train.seed + s
            cfg = apply_overrides(cfg0, seed=seed)
            dkey = _data_key(cfg)
            if dkey not in prepared:
                prepared[dkey] = prepare_data(cfg.data, ddir, progress=progress)
            data = prepared[dkey]
            split = data.split
            used = list(split.train)[: cfg.data.max_train_images] if cfg.data.max_train_images else None
            check_no_leakage(split, used)
            if test_set is None:
                test_set = split.test
                split_info = {
                    "source": split.source,
                    "hash": split.hash,
                    "counts": split.counts(),
                    "official": split_note is None,
                    "note": split_note,
                }
                from hpsearch.data.splits import save_split

                save_split(split, out / "split.json")
            elif split.test != test_set:  # check_same_test_set ran before training; this is a backstop
                raise SanityError(f"column '{key}' was split into a different test set than the first column")
            run_dir = cdir / f"seed{seed}"
            label = f"{key} seed {seed}"
            log(
                f"[{label}] training {cfg.model.name} {dict(cfg.model.kwargs)} "
                f"for {cfg.train.epochs} epoch(s)"
            )
            t0 = time.perf_counter()
            outcome = train_from_config(cfg, out_dir=run_dir, data=data, progress=progress, description=label)
            train_wall = time.perf_counter() - t0
            r = outcome.result
            if r.checkpoint_path is None:
                raise SanityError(f"{label}: training wrote no checkpoint (no finite validation Dice)")
            if s == 0:
                dump_config(outcome.config, cdir / "config.yaml")
            t1 = time.perf_counter()
            m = evaluate_checkpoint(
                r.checkpoint_path, ddir, out_dir=run_dir / "test", split="test", device=cfg.train.device, k=4
            )
            eval_wall = time.perf_counter() - t1
            stems = _evaluated_stems(run_dir / "test" / "per_case.csv")
            if sorted(stems) != sorted(split.test):
                raise SanityError(f"{label}: the evaluated stems are not exactly the split's test stems")
            check_iou_le_dice(label, m["dice_mean"], m["iou_mean"])
            msg = warn_if_suspicious(label, m["dice_mean"], log=log)
            if msg:
                warnings.append(msg)
            runs.append(
                {
                    "seed": seed,
                    "dice": m["dice_mean"],
                    "iou": m["iou_mean"],
                    "dice_sd_images": m["dice_sd"],
                    "iou_sd_images": m["iou_sd"],
                    "micro_dice": m["micro_dice"],
                    "n_test": m["n"],
                    "best_epoch": r.best_epoch,
                    "epochs_run": r.epochs_run,
                    "best_val_dice": r.best_dice,
                    "best_val_iou": r.best_iou,
                    "train_wall_s": train_wall,
                    "fit_wall_s": r.wall_time_s,
                    "eval_wall_s": eval_wall,
                    "train_img_per_s": r.train_img_per_s,
                    "device": r.device,
                    "peak_memory_mb": r.peak_memory_mb,
                    "n_params": outcome.manifest.get("n_params"),
                    "n_train": outcome.manifest.get("n_train"),
                    "n_val": outcome.manifest.get("n_val"),
                    "dir": str(run_dir),
                    "curves": str(outcome.curves_path),
                    "worst": str(run_dir / "test" / "worst.png"),
                }
            )
            log(
                f"[{label}] test Dice {m['dice_mean']:.4f} IoU {m['iou_mean']:.4f} "
                f"(best val epoch {r.best_epoch}/{r.epochs_run}, {train_wall:.1f}s train, "
                f"{eval_wall:.1f}s test)"
            )
            del outcome
            release_memory(resolve_device(cfg.train.device))
        worst = Path(runs[0]["worst"])
        if worst.is_file():
            shutil.copyfile(worst, cdir / "worst.png")
        dice = [r["dice"] for r in runs]
        iou = [r["iou"] for r in runs]
        res = {
            "label": col.label,
            "config": base[key][1],
            "provenance": _provenance_note(base[key][0]),
            "model": cfg0.model.name,
            "model_kwargs": dict(cfg0.model.kwargs),
            "n_params": runs[0]["n_params"],
            "epochs": cfg0.train.epochs,
            "n_seeds": len(runs),
            "dice_mean": statistics.fmean(dice),
            "dice_sd": _sd(dice),
            "iou_mean": statistics.fmean(iou),
            "iou_sd": _sd(iou),
            "wall_time_s": sum(r["train_wall_s"] + r["eval_wall_s"] for r in runs),
            "hardware": sorted({r["device"] for r in runs}),
            "claimed": {"iou": col.claimed_iou, "dice": col.claimed_dice},
            "worst": str(cdir / "worst.png"),
            "resolved_config": str(cdir / "config.yaml"),
            "runs": runs,
        }
        check_iou_le_dice(key, res["dice_mean"], res["iou_mean"])
        col_results[key] = res

    results: dict[str, Any] = {
        "kind": "quick" if quick else "full",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data_dir": str(ddir),
        "n_seeds": seeds,
        "hardware": host_description(device),
        "epochs_cap": epochs,
        "max_train_images": max_train_images or (QUICK_MAX_TRAIN if quick else None),
        "split": split_info,
        "metric": "per-image Dice and IoU at threshold 0.5, original mask resolution, mean over test images",
        "selection": (
            "best epoch by validation Dice on a carve of the training images; test read once per run"
        ),
        "columns": col_results,
        "claims": {k: claim_check(c.claimed_dice, c.claimed_iou) for k, c in COLUMNS.items()},
        "warnings": warnings,
        "wall_time_s": time.perf_counter() - t_all,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(render_markdown(results, out_dir=out))
    return results


# ---------------------------------------------------------------------------------------- markdown


def _fmt(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "not run"
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def _rel(path: str, out_dir: Path | None) -> str:
    if out_dir is None:
        return path
    try:
        return str(Path(path).resolve().relative_to(out_dir.resolve()))
    except ValueError:
        return path


def render_markdown(results: dict[str, Any], *, out_dir: Path | None = None) -> str:
    """``results.md`` from ``results.json`` (deterministic, so it can be regenerated)."""
    cols = results["columns"]
    n = results["n_seeds"]
    quick = results["kind"] == "quick"
    lines = ["# Reproduction of the report's table", ""]
    if quick:
        lines += [
            "> **QUICK RUN: not a result.** Tiny models (base width 8 × width/64, depth − 2), 64 px, no "
            "augmentation, at most "
            f"{results['max_train_images']} training images and a few epochs. It proves that the pipeline "
            "runs end to end; its numbers say nothing about the report.",
            "",
        ]
    split = results["split"]
    if split.get("note"):
        lines += [f"> **Split:** {split['note']}.", ""]
    sd_note = "mean ± sd over seeds" if n > 1 else "1 seed, so no spread over seeds is given"
    lines += [
        f"Test set: {split['counts']['test']} images, split `{split['source']}` (hash {split['hash'][:16]}), "
        f"train {split['counts']['train']} / val {split['counts']['val']}"
        + (
            f" (training capped at {results['max_train_images']} images)"
            if results["max_train_images"]
            else ""
        )
        + f". Metric: {results['metric']}; "
        f"{sd_note}. Selection: {results['selection']}.",
        "",
        f"Hardware: {results['hardware']}. Seeds per column: {n}"
        + (f". Epochs capped at {results['epochs_cap']}" if results.get("epochs_cap") else "")
        + ".",
        "",
        "## The table (report layout)",
        "",
        "| | " + " | ".join(c.label for c in COLUMNS.values()) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for metric in ("iou", "dice"):
        name = "IoU" if metric == "iou" else "Dice"
        ours = [
            _fmt(cols[k][f"{metric}_mean"], cols[k][f"{metric}_sd"]) if k in cols else "not run"
            for k in COLUMNS
        ]
        claimed = [f"{getattr(c, f'claimed_{metric}'):.2f}" for c in COLUMNS.values()]
        lines.append(f"| {name} (this run) | " + " | ".join(ours) + " |")
        lines.append(f"| {name} (report's claim) | " + " | ".join(claimed) + " |")
    lines += ["", "## Per column", ""]
    lines += [
        "| column | model | params | epochs | seeds | best val Dice | wall (train + test) | hardware "
        "| config |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cols.values():
        val = statistics.fmean(r["best_val_dice"] for r in c["runs"])
        params = f"{c['n_params'] / 1e6:.3g}M" if c.get("n_params") else "?"
        lines.append(
            f"| {c['label']} | {c['model']} {c['model_kwargs']} | {params} | {c['epochs']} "
            f"| {c['n_seeds']} | "
            f"{val:.3f} | {c['wall_time_s']:.1f} s | {'; '.join(c['hardware'])} | `{c['config']}` "
            f"({c['provenance']}) |"
        )
    lines += [
        "",
        "Figures: each column's `worst.png` (the 4 worst test images of its first seed) and "
        "`<column>/seed<S>/curves.png` (loss, val Dice and val IoU per epoch; best epoch marked).",
        "",
    ]
    for c in cols.values():
        curves = ", ".join(f"[seed {r['seed']}]({_rel(r['curves'], out_dir)})" for r in c["runs"])
        lines.append(f"- {c['label']}: [worst.png]({_rel(c['worst'], out_dir)}); curves: {curves}")
    lines += ["", "## Sanity checks", ""]
    lines += [
        "- No test stem is in train or val, and every trained stem comes from the train part (checked "
        "from the split before training); the evaluated stems are exactly the test stems.",
        "- IoU ≤ Dice holds for every run and every column mean.",
    ]
    if results["warnings"]:
        lines += [f"- {w}" for w in results["warnings"]]
    else:
        lines.append(
            f"- No test Dice above {SUSPICIOUS_DICE:.2f} (which would be a reason to audit for leakage)."
        )
    lines += ["", "## Each column on its own", ""]
    lines += [
        "Every column is a config file; training and testing one by hand is the same code path (run from "
        "this folder: `<column>/config.yaml` paths are relative to it):",
        "",
        "```",
    ]
    data = results["data_dir"]
    for k, c in cols.items():
        modified = quick or results.get("epochs_cap") or results.get("max_train_images")
        shipped = not modified and Path(c["config"]).is_file()
        cfg_path = c["config"] if shipped else _rel(c["resolved_config"], out_dir)
        lines += [
            f"hpsearch train --config {cfg_path} --data {data} --out runs/{k}",
            f"hpsearch evaluate --checkpoint runs/{k}/best.pt --data {data} --out runs/{k}/test",
        ]
    lines += [
        "```",
        "",
        "`<column>/config.yaml` in this folder is the exact resolved config of each column's first seed "
        "(for another seed change `train.seed`).",
        "",
    ]
    lines += render_claims_section()
    return "\n".join(lines) + "\n"


def render_claims_section() -> list[str]:
    """The notes on the report's numbers, computed from ``claim_check``."""
    lines = [
        "## About the report's numbers",
        "",
        "- **Its best epoch was picked on its test set**, so its numbers are optimistic by an unknown "
        "amount. Here the epoch is picked on a validation carve of the training images (88 of the official "
        "880) and the test images (the official 120) are read once per run, after training.",
        "- **One run per column, no spread.** Differences of a few hundredths between single runs of a "
        "from-scratch U-Net are within seed-to-seed variation; use `--seeds 3` or more before reading them.",
        "- **Dice/IoU pairs.** Per image IoU = D/(2 − D), a convex function below the diagonal on [0, 1]. "
        "For means over images that gives D̄/(2 − D̄) ≤ mean IoU ≤ D̄: the lower bound holds when every image "
        "has the same Dice, the upper one only when every image scores exactly 0 or 1. (D̄/(2 − D̄) is a lower "
        "bound, not the value: the report's pairs are not made impossible by it.) 'position' is where a "
        "claimed IoU sits between the bounds (0 = all images equal, 1 = all images 0 or 1); 'min' is its "
        "smallest value if both numbers were rounded by up to 0.005.",
        "",
        "| pair | Dice | IoU | IoU if all images equal | IoU max | possible? | position (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in COLUMNS.values():
        ck = claim_check(c.claimed_dice, c.claimed_iou)
        lines.append(
            f"| report: {c.label} | {c.claimed_dice:.2f} | {c.claimed_iou:.2f} "
            f"| {ck['iou_if_uniform']:.3f} | "
            f"{ck['iou_max']:.2f} | {'yes' if ck['possible'] else 'no'} | {ck['position']:.2f} "
            f"({ck['position_min']:.2f}) |"
        )
    for name, d, j in MEASURED_PAIRS:
        ck = claim_check(d, j)
        lines.append(
            f"| {name} | {d:.3f} | {j:.3f} | {ck['iou_if_uniform']:.3f} | {d:.3f} | yes "
            f"| {ck['position']:.2f} |"
        )
    claims = {k: claim_check(c.claimed_dice, c.claimed_iou) for k, c in COLUMNS.items()}
    measured = [claim_check(d, j)["position"] for _, d, j in MEASURED_PAIRS]
    lo_m, hi_m = min(measured), max(measured)
    odd = [k for k, ck in claims.items() if ck["position_min"] > hi_m]
    fine = [k for k in claims if k not in odd]
    verdict = (
        "all four claimed pairs are" if all(ck["possible"] for ck in claims.values()) else "not every pair is"
    )

    def pos(keys: list[str], field: str) -> str:
        return ", ".join(f"{claims[k][field]:.2f}" for k in keys)

    def names(keys: list[str]) -> str:
        return ", ".join(COLUMNS[k].label for k in keys)

    lines += [
        "",
        f"By these bounds {verdict} mathematically possible. Measured per-image results on this split "
        f"sit at positions {lo_m:.2f}–{hi_m:.2f}"
        + (f"; the report's {names(fine)} pair ({pos(fine, 'position')}) looks like them" if fine else "")
        + (
            f", but its {names(odd)} pairs sit at {pos(odd, 'position')} "
            f"(at least {pos(odd, 'position_min')} under rounding): they need far more images at "
            "Dice ≈ 0 or ≈ 1 than any measured run shows. That is implausible, not impossible."
            if odd
            else "."
        ),
        "",
        "Pooling pixels over the whole test set (micro averaging) would give IoU = Dice/(2 − Dice) "
        "exactly ("
        + ", ".join(f"{ck['iou_if_uniform']:.2f}" for ck in claims.values())
        + "), i.e. position 0, so a different averaging does not explain the high positions either. "
        "Columns 1 and 2 claim the same Dice (0.71) with IoU 0.68 and 0.60, which needs very different "
        "per-image distributions of Dice.",
        "",
    ]
    return lines
