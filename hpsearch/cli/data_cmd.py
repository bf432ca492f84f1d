"""``hpsearch data ...``: check, synth, download and split datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hpsearch.cli._app import app, err_console, say
from hpsearch.cli.flags import AllowEmptyMasksOpt, DataOpt
from hpsearch.data.folder import DATA_ENV, resolve_data_dir

data_app = typer.Typer(
    help="Check, synthesise, download and split segmentation datasets (images/ + masks/ folders).",
    no_args_is_help=True,
)
app.add_typer(
    data_app,
    name="data",
    help="Dataset tools: check a folder, make a synthetic set, download Kvasir-SEG, write a split.",
)

@data_app.command("check")
def check_cmd(
    data: DataOpt = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    allow_empty_masks: AllowEmptyMasksOpt = False,
) -> None:
    """Decode every image and mask and report pairs, sizes and problems (exit 1 when any error is found)."""
    from hpsearch.data.check import check_dataset

    report = check_dataset(resolve_data_dir(data), progress=progress, allow_empty_masks=allow_empty_masks)
    for line in report.summary().splitlines():
        if line.startswith("error: "):
            err_console.print(
                f"[bold red]error:[/] {escape(line[len('error: ') :])}",
                highlight=False,
                soft_wrap=True,
                emoji=False,
            )
        else:
            say(line)
    if not report.ok:
        raise typer.Exit(1)


@data_app.command("synth")
def synth_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to write images/ and masks/ into.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of image/mask pairs.")] = 200,
    size: Annotated[int, typer.Option("--size", min=16, help="Image side length in pixels.")] = 256,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same pixels).")] = 0,
) -> None:
    """Write a synthetic polyp-like dataset (PNG) in the Kvasir-SEG folder layout."""
    from hpsearch.data.synth import make_synthetic

    path = make_synthetic(out, n=n, size=size, seed=seed)
    say(f"wrote {n} synthetic pairs ({size}x{size}, seed {seed}) to {path}")
    say(f"use it with: --data {path}")


@data_app.command("download")
def download_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to download and unpack into.")],
    url: Annotated[
        str | None, typer.Option("--url", help="Archive URL (default: official Kvasir-SEG zip).")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", help="Expected SHA-256 of the archive; a mismatch fails.")
    ] = None,
) -> None:
    """Download Kvasir-SEG (or another zip with images/ + masks/), verify, unpack and check it."""
    from hpsearch.data.download import KVASIR_SHA256, KVASIR_URL, download_dataset

    path = download_dataset(out, url=url or KVASIR_URL, sha256=sha256 or KVASIR_SHA256)
    say(f"dataset ready: {path}")
    say(f"use it with: --data {path}   (or export {DATA_ENV}={path})")


@data_app.command("split")
def split_cmd(
    out: Annotated[Path, typer.Option("--out", help="Where to write the split JSON.")],
    data: DataOpt = None,
    split_file: Annotated[
        str | None,
        typer.Option(
            "--split-file",
            help="A shipped split (kvasir-official, kvasir-pranet), a folder with train.txt + "
            "test.txt/val.txt, or a saved split JSON.",
        ),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share of non-test stems for val.")
    ] = 0.1,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Share held out as test (without --split-file).")
    ] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random parts of the split.")] = 0,
) -> None:
    """Write a train/val/test split of a dataset as JSON and print its counts and hash."""
    from hpsearch.data.splits import save_split, split_for
    from hpsearch.training.config import DataConfig

    settings = DataConfig(
        split_file=split_file, val_fraction=val_fraction, test_fraction=test_fraction, split_seed=seed
    )
    _, split = split_for(settings, resolve_data_dir(data))
    path = save_split(split, out)
    counts = split.counts()
    say(f"train {counts['train']}, val {counts['val']}, test {counts['test']} (source: {split.source})")
    say(f"hash {split.short_hash}  written to {path}")
