"""``results.md`` and the table the CLI prints, from ``results.json`` (deterministic: it can be regenerated).

Every sentence that depends on the split (how many images were trained, validated and tested on) is computed
from the split recorded in the results; every reference figure comes with its citation from the results'
``reference`` entry, which reproduce copies from ``references.yaml``.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from hpsearch.reproduce.records import ColumnResult, ReproduceResults
from hpsearch.reproduce.sanity import SUSPICIOUS_DICE

TABLE_HEADING = "## The table"


def _fmt(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "not run"
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def _rel(path: str, out_dir: Path | None) -> str:
    """A path of results.json as seen from the results folder (records name files relative to it already;
    older ones carry absolute paths)."""
    if out_dir is None or not Path(path).is_absolute():
        return path
    try:
        return str(Path(path).resolve().relative_to(out_dir.resolve()))
    except ValueError:
        return path


def _is_shipped(config: str) -> bool:
    """Whether a column's config file exists as named: absolute, or relative to the repository."""
    path = Path(config)
    return (path if path.is_absolute() else Path(__file__).resolve().parents[2] / path).is_file()


def _train_images(col: ColumnResult) -> str:
    cap = col.max_train_images
    return f"{col.n_train} (cap {cap})" if cap else str(col.n_train)


def _metric_rows(results: ReproduceResults) -> list[tuple[str, list[str]]]:
    """IoU and Dice: this run's, then the report's claim where it has one for any column that ran."""
    cols = results.columns
    figures = results.reference.figures
    iou = [_fmt(c.iou_mean, c.iou_sd) for c in cols.values()]
    dice = [_fmt(c.dice_mean, c.dice_sd) for c in cols.values()]
    rows: list[tuple[str, list[str]]] = []
    for name, ours, claims in (
        ("IoU", iou, {k: f.iou for k, f in figures.items()}),
        ("Dice", dice, {k: f.dice for k, f in figures.items()}),
    ):
        rows.append((f"{name} (this run)", ours))
        claimed = [f"{claims[k]:.2f}" if k in claims else "—" for k in cols]
        if any(v != "—" for v in claimed):
            rows.append((f"{name} (report's claim ¹)", claimed))
    return rows


def render_table(results: ReproduceResults) -> str:
    """The table: one column per column that ran, what each trained (recipe, model, sizes, epochs, training
    images) and what it measured, next to the report's claims where the report has one (marked ¹)."""
    cols = results.columns
    rows: list[tuple[str, list[str]]] = [
        ("recipe", [c.recipe for c in cols.values()]),
        ("model", [c.model for c in cols.values()]),
        ("scale", [c.scale or "full" for c in cols.values()]),  # older results, all full size, do not say
        ("image size", [f"{c.image_size}²" for c in cols.values()]),
        ("base width / depth", [f"{c.base_width} / {c.depth}" for c in cols.values()]),
        ("epochs", [str(c.epochs) for c in cols.values()]),
        ("training images", [_train_images(c) for c in cols.values()]),
        ("seeds", [str(c.n_seeds) for c in cols.values()]),
        *_metric_rows(results),
    ]
    lines = [
        "| | " + " | ".join(c.label for c in cols.values()) + " |",
        "|---|" + "---|" * len(cols),
    ]
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in rows]
    return "\n".join(lines)


def _reference_note(results: ReproduceResults) -> list[str]:
    ref = results.reference
    if not ref.figures:
        return []
    source, split, resolution, averaging = (
        str(v).rstrip(".")
        for v in (ref.citation.source, ref.citation.split, ref.citation.resolution, ref.citation.averaging)
    )
    return [
        f"¹ {source} (claimed there, not checked by this project). Split: {split}. "
        f"Resolution: {resolution}. Averaging: {averaging}. So the claims were not measured on "
        "this run's split and do not compare one to one with its numbers.",
        "",
    ]


def _header(results: ReproduceResults) -> list[str]:
    split = results.split
    counts = split.counts
    n = results.n_seeds
    lines = ["# Reproduction of the report's table", ""]
    if results.kind == "quick":
        lines += [
            "> **QUICK RUN: not a result.** Tiny models (base width 8 × width/64, depth − 2), 64 px, no "
            f"augmentation, at most {results.max_train_images} training images and a few epochs. It "
            "proves that the pipeline runs end to end; its numbers say nothing about the report.",
            "",
        ]
    if split.note:
        lines += [f"> **Split:** {split.note}.", ""]
    cap = results.max_train_images
    sd_note = "mean ± sd over seeds" if n > 1 else "1 seed, so no spread over seeds is given"
    lines += [
        f"Test set: {counts['test']} images, split `{split.source}` (hash {split.hash[:16]}), "
        f"train {counts['train']} / val {counts['val']}"
        + (f" (training capped at {cap} images)" if cap else "")
        + f". Metric: {results.metric}; {sd_note}. Selection: {results.selection}.",
        "",
        # Kept runs may come from another sitting on another machine: the per-column table names each run's.
        f"Hardware of this sitting: {results.hardware} (each column's own runs: see Per column). "
        f"Seeds per column: {n}"
        + (f". Epochs capped at {results.epochs_cap}" if results.epochs_cap else "")
        + ".",
        "",
    ]
    return lines


def _per_column(results: ReproduceResults, out_dir: Path | None) -> list[str]:
    cols = results.columns
    lines = [
        "## Per column",
        "",
        "| column | model | params | best val Dice | runs kept from before | wall (train + test) | hardware "
        "| config |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cols.values():
        val = statistics.fmean(r.best_val_dice for r in c.runs)
        params = f"{c.n_params / 1e6:.3g}M" if c.n_params else "?"
        lines.append(
            f"| {c.label} | {c.model} {c.model_kwargs} | {params} | {val:.3f} "
            f"| {c.n_kept or 0} of {c.n_seeds} | {c.wall_time_s:.1f} s "
            f"| {'; '.join(c.hardware)} | `{c.config}` ({c.provenance}) |"
        )
    lines += [
        "",
        "Figures: each column's `worst.png` (the 4 worst test images of its first seed) and "
        "`<column>/seed<S>/curves.png` (loss, val Dice and val IoU per epoch; best epoch marked).",
        "",
    ]
    for c in cols.values():
        curves = ", ".join(f"[seed {r.seed}]({_rel(str(r.curves), out_dir)})" for r in c.runs)
        lines.append(f"- {c.label}: [worst.png]({_rel(c.worst, out_dir)}); curves: {curves}")
    return lines + [""]


def _sanity(results: ReproduceResults) -> list[str]:
    lines = [
        "## Sanity checks",
        "",
        "- Columns differ only in what they are meant to vary (the U-Net and the CBAM U-Net of a recipe only "
        "in the model, the two recipes of a model only in the recipe, the wider/deeper U-Net only in its "
        "size); checked before training.",
        "- No test stem is in train or val, and every trained stem comes from the train part (checked "
        "from the split before training); the evaluated stems are exactly the test stems.",
        "- IoU ≤ Dice holds for every run and every column mean.",
    ]
    if results.warnings:
        lines += [f"- {w}" for w in results.warnings]
    else:
        lines.append(
            f"- No test Dice above {SUSPICIOUS_DICE:.2f} (this project's threshold for auditing a result "
            "for leakage)."
        )
    return lines + [""]


def _commands(results: ReproduceResults, out_dir: Path | None) -> list[str]:
    lines = [
        "## Each column on its own",
        "",
        "Every column is a config file; training and testing one by hand is the same code path (run from "
        "this folder: `<column>/config.yaml` and the data paths are relative to it; `configs/...` is in the "
        "repository):",
        "",
        "```",
    ]
    data = results.data_dir
    modified = results.kind == "quick" or results.epochs_cap or results.max_train_images
    for k, c in results.columns.items():
        shipped = not modified and _is_shipped(c.config)
        cfg_path = c.config if shipped else _rel(c.resolved_config, out_dir)
        lines += [
            f"hpsearch train --config {cfg_path} --data {data} --out runs/{k}",
            f"hpsearch evaluate --checkpoint runs/{k}/best.pt --data {data} --out runs/{k}/test",
        ]
    return lines + [
        "```",
        "",
        "`<column>/config.yaml` in this folder is the exact resolved config of each column's first seed "
        "(for another seed change `train.seed`).",
        "",
    ]


def render_markdown(results: ReproduceResults, *, out_dir: Path | None = None) -> str:
    """``results.md`` from ``results.json``."""
    lines = _header(results)
    lines += [TABLE_HEADING, "", render_table(results), ""]
    lines += _reference_note(results)
    lines += _per_column(results, out_dir)
    lines += _sanity(results)
    lines += _commands(results, out_dir)
    return "\n".join(lines)
