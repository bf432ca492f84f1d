"""Run the table: plan the columns (configs, checks, split), train and test each (column, seed) once, keep
what finished, and write ``results.json`` and ``results.md``.

A finished run leaves ``<out>/<column>/seed<S>/run.json``. When reproduce runs again with the same config,
the same data files and the same split, that run is kept and not trained again; any change re-runs it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpsearch.data.io import portable_path
from hpsearch.data.splits import shown_source
from hpsearch.errors import DataError
from hpsearch.reproduce.columns import (
    COLUMNS,
    QUICK_EPOCHS,
    QUICK_MAX_TRAIN,
    QUICK_RANDOM_SPLIT,
    column_config,
    load_column_configs,
    parse_columns,
    quick_config,
)
from hpsearch.reproduce.records import (
    Claim,
    ColumnResult,
    ReferenceInfo,
    ReproduceResults,
    RunRecord,
    SplitInfo,
)
from hpsearch.reproduce.references import load_references
from hpsearch.reproduce.render import render_markdown
from hpsearch.reproduce.sanity import (
    SanityError,
    check_comparable,
    check_iou_le_dice,
    check_no_leakage,
    check_same_test_set,
    effective_model_kwargs,
    split_or_reason,
    warn_if_suspicious,
)
from hpsearch.reproduce.table_options import ReproduceOptions
from hpsearch.training.config import RunConfig, dump_config, portable_payload, resolve_run_config

Log = Callable[[str], None]
RUN_RECORD = "run.json"
RECORD_VERSION = 1


@dataclass(frozen=True)
class Plan:
    """Everything decided before the first run trains: the columns' configs, the data and the split.

    Only decisions: the data the runs load is kept apart, in the runner's ``DataCache``.
    """

    data_dir: Path
    out: Path
    keys: tuple[str, ...]
    cfgs: dict[str, RunConfig]  # as they run (quick mode and options applied), before the per-seed seed
    loaded: dict[str, tuple[RunConfig, str]]  # as loaded, with the file (or export) each came from
    pairs: list
    split: Any
    split_note: str | None
    fingerprint: str


class DataCache:
    """The table's prepared training data, loaded once per ``DataConfig.prepared_key()``: the columns of a
    table read the data alike as a rule, so they share one copy instead of decoding it per run."""

    def __init__(self, data_dir: Path, *, progress: bool | None = None) -> None:
        self.data_dir = data_dir
        self.progress = progress
        self._prepared: dict[str, Any] = {}

    def get(self, cfg: RunConfig) -> Any:
        """``cfg``'s prepared data (a ``PreparedData``), loaded on first use."""
        import hpsearch.training.session as trainer

        key = cfg.data.prepared_key()
        if key not in self._prepared:
            self._prepared[key] = trainer.prepare_data(cfg.data, self.data_dir, progress=self.progress)
        return self._prepared[key]


def host_description(device: str | None) -> str:
    """The training device as ``describe_device`` names it, plus the host."""
    from hpsearch.training.device import describe_device, resolve_device

    dev = describe_device(resolve_device(device or "auto"))
    return f"{dev}; host {platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"


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


def _resolve_columns(base: dict[str, tuple[RunConfig, str]], opts: ReproduceOptions) -> dict[str, RunConfig]:
    """Shrink (quick), then apply the options, column by column."""
    from hpsearch.training.validate import check_registry_names

    cfgs: dict[str, RunConfig] = {}
    for key, (cfg, source) in base.items():
        check_registry_names(cfg, source=source)
        # The scale first: it shrinks the model and images of every column alike (a laptop-scale export as
        # the tuned column is already at that scale and is left as it is).
        cfg = resolve_run_config(cfg, scale=opts.scale, source=source)
        if opts.quick:
            cfg = quick_config(
                cfg,
                epochs=opts.epochs or QUICK_EPOCHS,
                max_train_images=opts.max_train_images or QUICK_MAX_TRAIN,
            )
        cfgs[key] = column_config(
            cfg,
            device=opts.device,
            epochs=opts.epochs,
            max_train_images=opts.max_train_images,
            compile_mode=opts.compile_mode,
        )
    return cfgs


def _fit_split(cfgs: dict[str, RunConfig], ddir: Path, pairs: list, *, quick: bool, log: Log) -> str | None:
    """None when the configs' split fits this data; in quick mode a note and a random split instead."""
    first = next(iter(cfgs.values()))
    _, why = split_or_reason(first, ddir, pairs)
    if not why:
        return None
    if not quick:
        raise DataError(
            f"{why}. `hpsearch reproduce` measures the report's table on the data its split was made "
            f"for (Kvasir-SEG for '{first.data.split_file}'); use --quick to exercise the pipeline on "
            "other data"
        )
    note = (
        f"the data folder does not fit the configs' split '{first.data.split_file}' "
        f"({why.split(': ', 1)[0]}); quick mode "
        f"used a seeded random split instead (val_fraction {QUICK_RANDOM_SPLIT['val_fraction']}, "
        f"test_fraction {QUICK_RANDOM_SPLIT['test_fraction']}, seed {QUICK_RANDOM_SPLIT['split_seed']})"
    )
    log(f"note: {note}")
    for key, cfg in cfgs.items():
        cfgs[key] = column_config(cfg, split=QUICK_RANDOM_SPLIT)
    return note


def plan_columns(options: ReproduceOptions, *, log: Log = print) -> Plan:
    """Load, check and resolve every column's config and split the data, before anything trains."""
    from hpsearch.data.check import verify_dataset
    from hpsearch.training.device import resolve_device

    ddir = Path(options.data).expanduser().resolve()
    keys = parse_columns(options.columns)
    resolve_device(options.device or "auto")  # fail early on an unavailable device
    base = load_column_configs(keys, config_dir=options.config_folder, tuned_config=options.tuned_file)
    # At the asked scale first: a laptop-scale export and the full-size column files then compare as equals.
    base = {k: (resolve_run_config(c, scale=options.scale, source=s), s) for k, (c, s) in base.items()}
    check_comparable({k: c for k, (c, _) in base.items()}, {k: s for k, (_, s) in base.items()})
    cfgs = _resolve_columns(base, options)
    pairs = verify_dataset(ddir)
    note = _fit_split(cfgs, ddir, pairs, quick=options.quick, log=log)
    split = check_same_test_set(cfgs, ddir, pairs)
    check_comparable(cfgs)  # a backstop: quick mode and the options change every column alike
    for cfg in cfgs.values():
        cap = cfg.data.max_train_images
        check_no_leakage(split, list(split.train)[:cap] if cap else None)
    return Plan(ddir, options.out_dir, tuple(keys), cfgs, base, pairs, split, note, data_identity(pairs))


# ------------------------------------------------------------------------------------------ one run


def data_identity(pairs: Sequence[Any]) -> str:
    """sha256 over every pair's stem, file names and sizes.

    Unlike the cache's fingerprint it leaves out modification times: a dataset copied to a fresh machine
    (as each GPU session is) gets new mtimes, and that must not retrain runs that already finished on it.
    """
    h = hashlib.sha256()
    for pair in pairs:
        h.update(pair.stem.encode())
        for path in (pair.image, pair.mask):
            h.update(f"\0{path.name}\0{path.stat().st_size}".encode())
    return h.hexdigest()


def run_identity(cfg: RunConfig, plan: Plan) -> dict[str, Any]:
    """What a kept run must match: the exact config, the data files and the split."""
    return {
        "version": RECORD_VERSION,
        "config": cfg.model_dump(mode="json"),
        "data": plan.fingerprint,
        "split_hash": plan.split.hash,
    }


def _evaluated_stems(per_case_csv: Path) -> list[str]:
    with per_case_csv.open(newline="") as fh:
        return [row["stem"] for row in csv.DictReader(fh)]


def _what_trains(identity: Any) -> Any:
    """An identity less where the data lay and where the config came from: a run copied to another machine
    (another data folder, a config file elsewhere) is still the same run; its data is checked by hash."""
    if not isinstance(identity, dict) or not isinstance(identity.get("config"), dict):
        return identity
    config = {**identity["config"], "provenance": None}
    if isinstance(config.get("data"), dict):
        config["data"] = {**config["data"], "path": None}
    return {**identity, "config": config}


def load_finished(run_dir: Path, identity: dict[str, Any]) -> RunRecord | None:
    """The record of a finished run in ``run_dir`` made with ``identity``, else None.

    The checkpoint is not required: a run is its record and its test outputs, so a results folder copied
    back without the (large) ``best.pt`` files still resumes. A record this version cannot read is no
    finished run: the run trains again and rewrites it.
    """
    try:
        data = json.loads((run_dir / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or _what_trains(data.get("identity")) != _what_trains(identity):
        return None
    if not (run_dir / "test" / "per_case.csv").is_file():
        return None
    try:
        return RunRecord.from_json(data, str(run_dir / RUN_RECORD))
    except DataError:
        return None


def _write_record(run_dir: Path, record: RunRecord) -> None:
    """Atomically: a run is finished only once its whole record is on disk."""
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{RUN_RECORD}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record.to_json(), fh, indent=2)
        os.replace(tmp, run_dir / RUN_RECORD)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def train_and_test(
    cfg: RunConfig, run_dir: Path, plan: Plan, data_cache: DataCache, *, label: str, progress: bool | None,
    log: Log,
) -> RunRecord:  # fmt: skip
    """Train one (column, seed), test its best checkpoint once on the sealed test set, return the record."""
    import hpsearch.training.session as trainer
    from hpsearch.training.device import release_memory, resolve_device
    from hpsearch.training.evaluate import evaluate_checkpoint

    data = data_cache.get(cfg)
    cap = cfg.data.max_train_images
    check_no_leakage(data.split, list(data.split.train)[:cap] if cap else None)  # what actually trains
    if data.split.test != plan.split.test:
        raise SanityError(f"{label}: split into a different test set than the one checked before training")
    log(f"[{label}] training {cfg.model.name} {dict(cfg.model.kwargs)} for {cfg.train.epochs} epoch(s)")
    t0 = time.perf_counter()
    # A run killed half-way (a session's end) continues from its last saved epoch when the same command
    # runs again: the identity that keeps a finished run also keys the saved state.
    outcome = trainer.train_from_config(
        cfg,
        out_dir=run_dir,
        data=data,
        progress=progress,
        description=label,
        resume_key=run_identity(cfg, plan),
    )
    train_wall = time.perf_counter() - t0
    r = outcome.result
    if r.checkpoint_path is None:
        raise SanityError(f"{label}: training wrote no checkpoint (no finite validation Dice)")
    t1 = time.perf_counter()
    m = evaluate_checkpoint(
        r.checkpoint_path, plan.data_dir, out_dir=run_dir / "test", split="test", device=cfg.train.device, k=4
    )
    record = RunRecord(
        identity=run_identity(cfg, plan),
        seed=cfg.train.seed,
        dice=m["dice_mean"],
        iou=m["iou_mean"],
        dice_sd_images=m["dice_sd"],
        iou_sd_images=m["iou_sd"],
        micro_dice=m["micro_dice"],
        n_test=m["n"],
        best_epoch=r.best_epoch,
        epochs_run=r.epochs_run,
        best_val_dice=r.best_dice,
        best_val_iou=r.best_iou,
        # A resumed run's fit time spans its sittings; this sitting's clock alone would undercount it.
        train_wall_s=max(train_wall, r.wall_time_s),
        resumed_from_epoch=r.resumed_from_epoch,
        fit_wall_s=r.wall_time_s,
        eval_wall_s=time.perf_counter() - t1,
        train_img_per_s=r.train_img_per_s,
        device=r.device,
        peak_memory_mb=r.peak_memory_mb,
        n_params=outcome.manifest.get("n_params"),
        n_train=outcome.manifest.get("n_train"),
        n_val=outcome.manifest.get("n_val"),
        resolved_config=portable_payload(outcome.config, run_dir),
    )
    del outcome
    release_memory(resolve_device(cfg.train.device))
    return record


def run_once(
    cfg: RunConfig, run_dir: Path, plan: Plan, data_cache: DataCache, *, label: str, progress: bool | None,
    log: Log,
) -> tuple[RunRecord, bool]:  # fmt: skip
    """One (column, seed): the kept record when it finished before with this identity, else a new run.

    Returns the record and whether it was kept. Every record is checked the same way either way.
    """
    record = load_finished(run_dir, run_identity(cfg, plan))
    kept = record is not None
    if record is None:
        # A stale record must not outlive the outputs it describes if this run dies half-way.
        (run_dir / RUN_RECORD).unlink(missing_ok=True)
        record = train_and_test(cfg, run_dir, plan, data_cache, label=label, progress=progress, log=log)
    stems = _evaluated_stems(run_dir / "test" / "per_case.csv")
    if sorted(stems) != sorted(plan.split.test):
        raise SanityError(f"{label}: the evaluated stems are not exactly the split's test stems")
    check_iou_le_dice(label, record.dice, record.iou)
    if not kept:
        _write_record(run_dir, record)
    verb = "kept (finished before with this config)" if kept else "test"
    log(
        f"[{label}] {verb}: Dice {record.dice:.4f} IoU {record.iou:.4f} "
        f"(best val epoch {record.best_epoch}/{record.epochs_run}, "
        f"{record.train_wall_s:.1f}s train, {record.eval_wall_s:.1f}s test)"
    )
    return record, kept


# ------------------------------------------------------------------------------------------ a column


def _resolved_config(record: RunRecord, run_dir: Path) -> RunConfig:
    """A run record's resolved config; its ``data.path`` is written relative to the run's folder."""
    cfg = RunConfig.model_validate(record.resolved_config)
    if cfg.data.path and not Path(cfg.data.path).is_absolute():
        cfg.data.path = str((run_dir / cfg.data.path).resolve())
    return cfg


def _portable_source(source: str, out: Path) -> str:
    """A column's source ("FILE" or "FILE (note)") with FILE named by ``portable_path``."""
    path, sep, note = source.partition(" (")
    return portable_path(path, out, shipped=True) + sep + note


def _sd(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _column_result(key: str, plan: Plan, runs: Sequence[RunRecord], cdir: Path) -> ColumnResult:
    cfg0 = plan.cfgs[key]
    model_kwargs = effective_model_kwargs(cfg0)
    dice = [r.dice for r in runs]
    iou = [r.iou for r in runs]
    res = ColumnResult(
        label=COLUMNS[key].label,
        recipe=COLUMNS[key].recipe,
        config=_portable_source(plan.loaded[key][1], plan.out),
        provenance=_provenance_note(plan.loaded[key][0]),
        model=cfg0.model.name,
        model_kwargs=dict(cfg0.model.kwargs),
        scale=cfg0.scale,
        image_size=cfg0.data.image_size,
        base_width=model_kwargs.get("base_width"),
        depth=model_kwargs.get("depth"),
        epochs=cfg0.train.epochs,
        max_train_images=cfg0.data.max_train_images,
        n_train=runs[0].n_train,
        n_params=runs[0].n_params,
        n_seeds=len(runs),
        n_kept=sum(1 for r in runs if r.kept),
        dice_mean=statistics.fmean(dice),
        dice_sd=_sd(dice),
        iou_mean=statistics.fmean(iou),
        iou_sd=_sd(iou),
        wall_time_s=sum(r.wall_s for r in runs),
        hardware=tuple(sorted({r.device for r in runs})),
        worst=portable_path(cdir / "worst.png", plan.out),
        resolved_config=portable_path(cdir / "config.yaml", plan.out),
        runs=tuple(runs),
    )
    check_iou_le_dice(key, res.dice_mean, res.iou_mean)
    return res


def run_column(
    key: str, plan: Plan, data_cache: DataCache, *, seeds: int, progress: bool | None, log: Log,
    warnings: list[str],
) -> ColumnResult:  # fmt: skip
    """Every seed of one column (kept or run), its worst.png and config.yaml, and its summary."""
    cdir = plan.out / key
    cdir.mkdir(parents=True, exist_ok=True)
    runs: list[RunRecord] = []
    for s in range(seeds):
        cfg = column_config(plan.cfgs[key], seed=plan.cfgs[key].train.seed + s)
        run_dir = cdir / f"seed{cfg.train.seed}"
        label = f"{key} seed {cfg.train.seed}"
        record, kept = run_once(cfg, run_dir, plan, data_cache, label=label, progress=progress, log=log)
        if s == 0:
            dump_config(_resolved_config(record, run_dir), cdir / "config.yaml")
        msg = warn_if_suspicious(label, record.dice, log=log)
        if msg:
            warnings.append(msg)
        # Files named relative to the results folder: results.json carries no machine's folders.
        runs.append(
            record.for_results(
                kept=kept,
                dir=portable_path(run_dir, plan.out),
                curves=portable_path(run_dir / "curves.png", plan.out),
                worst=portable_path(run_dir / "test" / "worst.png", plan.out),
            )
        )
    worst = plan.out / str(runs[0].worst)
    if worst.is_file():
        shutil.copyfile(worst, cdir / "worst.png")
    return _column_result(key, plan, runs, cdir)


# ------------------------------------------------------------------------------------------ the table


def _split_info(plan: Plan) -> SplitInfo:
    split = plan.split
    return SplitInfo(
        source=shown_source(split.source, plan.out),
        hash=split.hash,
        counts=split.counts(),
        official=plan.split_note is None,
        note=plan.split_note,
    )


def _reference_info(keys: Sequence[str]) -> ReferenceInfo:
    """The report's figures for the columns that ran, with their citation (from references.yaml)."""
    refs = load_references()
    return ReferenceInfo(
        citation=refs.report,
        figures={k: Claim(f.label, f.dice, f.iou) for k, f in refs.report_figures.items() if k in keys},
    )


def _selection(counts: dict[str, int]) -> str:
    return (
        f"best epoch by validation Dice on the {counts['val']} validation images carved from the "
        f"{counts['train'] + counts['val']} non-test images; the {counts['test']} test images are read "
        "once per run, after training"
    )


def reproduce(options: ReproduceOptions, *, log: Log = print) -> ReproduceResults:
    """Train and test every column for ``options.seeds`` seeds (keeping finished runs); write results.json
    and results.md; return the results."""
    from hpsearch.data.splits import save_split

    t_all = time.perf_counter()
    plan = plan_columns(options, log=log)
    plan.out.mkdir(parents=True, exist_ok=True)
    save_split(plan.split, plan.out / "split.json")
    # The runner owns the loaded data: the plan stays a record of decisions.
    data_cache = DataCache(plan.data_dir, progress=options.progress)
    warnings: list[str] = []
    col_results = {
        k: run_column(
            k, plan, data_cache, seeds=options.seeds, progress=options.progress, log=log, warnings=warnings
        )
        for k in plan.keys
    }
    quick_cap = QUICK_MAX_TRAIN if options.quick else None
    results = ReproduceResults(
        kind="quick" if options.quick else "full",
        scale=tuple(sorted({c.scale for c in plan.cfgs.values()})),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        data_dir=portable_path(plan.data_dir, plan.out),
        n_seeds=options.seeds,
        hardware=host_description(options.device),
        epochs_cap=options.epochs,
        max_train_images=options.max_train_images or quick_cap,
        split=_split_info(plan),
        metric="per-image Dice and IoU at threshold 0.5, original mask resolution, mean over test images",
        selection=_selection(plan.split.counts()),
        columns=col_results,
        reference=_reference_info(plan.keys),
        warnings=tuple(warnings),
        wall_time_s=time.perf_counter() - t_all,
    )
    (plan.out / "results.json").write_text(json.dumps(results.to_json(), indent=2))
    (plan.out / "results.md").write_text(render_markdown(results, out_dir=plan.out))
    return results
