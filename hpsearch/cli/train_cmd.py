"""``hpsearch train`` and ``hpsearch evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hpsearch.cli._app import app, console, err_console
from hpsearch.cli.flags import AllowEmptyMasksOpt, DataOpt, DeviceOpt, EvalSplit, ScaleOpt, SetOpt


@app.command()
def train(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="run config YAML (e.g. an exported best.yaml)")
    ],
    data: DataOpt = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/train"),
    device: DeviceOpt = None,
    scale: ScaleOpt = None,
    sets: SetOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="continue a killed run of the same config in --out after its last saved epoch "
            "(state saved at most once a minute in OUT/resume.pt); --no-resume starts over"
        ),
    ] = True,
    allow_empty_masks: AllowEmptyMasksOpt = False,
) -> None:
    """Train one model from a config; writes best.pt, metrics.json, curves.png and val_worst.png.

    `--set train.epochs=5` overrides a config value, as in `run`. Without a terminal (nohup, Slurm,
    Kubernetes) it writes one line per epoch instead of a progress bar.
    Run again with the same config and --out after a kill, and it continues where it stopped."""
    from hpsearch.training.config import load_config, parse_overrides, resolve_run_config
    from hpsearch.training.session import train_from_config
    from hpsearch.training.validate import check_registry_names

    cfg = resolve_run_config(
        load_config(config), overrides=parse_overrides(sets), device=device, scale=scale, source=str(config)
    )
    if allow_empty_masks:
        cfg.data.allow_empty_masks = True
    check_registry_names(cfg, source=str(config))
    outcome = train_from_config(cfg, data_dir=data, out_dir=out, resume=resume)
    r = outcome.result
    console.print(
        f"best val Dice {r.best_dice:.4f} / IoU {r.best_iou:.4f} at epoch {r.best_epoch}/{r.epochs_run} "
        f"on {r.device} in {r.wall_time_s:.1f}s ({r.train_img_per_s:.1f} img/s, scale {cfg.scale})"
    )
    console.print(f"wrote {r.checkpoint_path}, {outcome.metrics_path}, {outcome.curves_path}")


@app.command()
def evaluate(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="best.pt from `hpsearch train` or a trial")
    ],
    data: DataOpt = None,
    split: Annotated[
        EvalSplit, typer.Option(help="a part of the run's split, or all (any dataset folder)")
    ] = EvalSplit.test,
    split_file: Annotated[str | None, typer.Option(help="override the run's split file")] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/evaluate"),
    k: Annotated[int, typer.Option(help="number of worst cases in worst.png", min=0)] = 4,
    device: DeviceOpt = None,
) -> None:
    """Evaluate a checkpoint at the original mask resolution: metrics.json, per_case.csv, worst.png."""
    from hpsearch.data.folder import resolve_data_dir
    from hpsearch.training.evaluate import evaluate_checkpoint, load_checkpoint, unsealed_warning

    _, cfg, _ = load_checkpoint(checkpoint)
    ddir = resolve_data_dir(data, cfg.data.path)
    warning = unsealed_warning(cfg, split.value, split_file)
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    m = evaluate_checkpoint(
        checkpoint, ddir, out_dir=out, split=split.value, split_file=split_file, k=k, device=device or "auto"
    )
    console.print(
        f"{split.value} split ({m['split_source']}): {m['n']} images scored: Dice {m['dice_mean']:.4f} ± "
        f"{m['dice_sd']:.4f}, IoU {m['iou_mean']:.4f} ± {m['iou_sd']:.4f}, micro Dice {m['micro_dice']:.4f}",
        markup=False, highlight=False,
    )
    console.print(f"wrote {out / 'metrics.json'}, {out / 'per_case.csv'}, {out / 'worst.png'}")
