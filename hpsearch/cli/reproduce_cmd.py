"""``hpsearch reproduce``: the report's table (five columns) on the official split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpsearch.cli._app import app, console, err_console
from hpsearch.cli.flags import CompileOpt, DataOpt, DeviceOpt, ScaleOpt


@app.command()
def reproduce(
    data: DataOpt = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/reproduce"),
    columns: Annotated[
        list[str] | None,
        typer.Option(
            "--columns",
            help="some of: unet, unet_cbam, tuned, tuned_cbam, wide_deep (comma-separated or repeated)",
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="seeds per column (seed s changes train.seed only)")] = 1,
    quick: Annotated[
        bool, typer.Option("--quick", help="tiny models, 64 px, 1-2 epochs: proves the path on a CPU")
    ] = False,
    device: DeviceOpt = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="cap every column's epochs")] = None,
    max_train_images: Annotated[
        int | None, typer.Option("--max-train-images", min=1, help="train on only this many images")
    ] = None,
    tuned_config: Annotated[
        Path | None,
        typer.Option("--tuned-config", help="`hpsearch export` output for the tuned column (and tuned CBAM)"),
    ] = None,
    config_dir: Annotated[
        Path | None, typer.Option("--config-dir", help="folder with the column configs (default: configs/)")
    ] = None,
    compile_mode: CompileOpt = None,
    scale: ScaleOpt = None,
) -> None:
    """Train the report's columns, test each on the sealed test set, write results.md and results.json.

    A (column, seed) that finished before with the same config is kept, not trained again."""
    from hpsearch.data.folder import resolve_data_dir
    from hpsearch.reproduce import ReproduceOptions, render_table
    from hpsearch.reproduce import reproduce as run_reproduce

    options = ReproduceOptions(
        data=resolve_data_dir(data),
        out=out,
        columns=columns,
        seeds=seeds,
        quick=quick,
        device=device,
        epochs=epochs,
        max_train_images=max_train_images,
        config_dir=config_dir,
        tuned_config=tuned_config,
        compile_mode=compile_mode.value if compile_mode else None,
        scale=scale,
    )
    results = run_reproduce(
        options,
        log=lambda msg: (err_console if msg.startswith("WARNING") else console).print(
            msg, highlight=False, markup=False
        ),
    )
    console.print(render_table(results), highlight=False, markup=False, soft_wrap=True)
    console.print(f"wrote {out / 'results.md'}, {out / 'results.json'} ({results.wall_time_s:.1f}s)")
