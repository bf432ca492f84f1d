"""The laptop scale on this machine: ``fit`` (augmentation, loss, validation and all) against a bare loop.

Both train the same model (the lr_batch study's fixed config at ``--scale laptop``) with the same batch size,
optimizer and loss on the same cores, over the same decoded Kvasir-SEG training images. The bare loop is
what a notebook would write: preloaded normalised tensors, forward, BCE-with-logits, backward, step; no
augmentation, no validation. Runs alternate (fit, bare, fit, bare, ...) so a noisy machine slows both alike;
the ratio of the medians is the figure. It also prints the seconds per epoch and what a 25-epoch trial costs.

    python benchmarks/laptop.py --out bench-out            # real Kvasir-SEG (../shared/data/kvasir-seg)
    python benchmarks/laptop.py --quick --out bench-out    # a few synthetic images: checks the script only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import find_kvasir, hardware, interleaved, median, synthetic_jpeg_dataset, write_results

TRIAL_EPOCHS = 25  # the report's chosen length: the "one 25-epoch trial"


def laptop_config(data_dir: Path, *, batch: int, official: bool) -> Any:
    """lr_batch's fixed part at the laptop scale, with the report's recipe (Adam 1e-3) and ``batch``."""
    from hpsearch.search.spec import load_study_spec
    from hpsearch.training.config import resolve_run_config

    spec = load_study_spec("lr_batch")
    overrides = {"train.batch_size": batch, "train.optimizer": "adam", "train.lr": 1e-3,
                 "train.device": "cpu"}
    if not official:
        overrides |= {"data.split_file": None, "data.test_fraction": 0.1}
    return resolve_run_config(spec.fixed, overrides=overrides, data_path=data_dir, scale="laptop")


def bare_epoch(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, batch: int) -> float:
    """One epoch of the bare loop over preloaded tensors; returns training images per second."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    n = (len(images) // batch) * batch
    order = torch.randperm(len(images))[:n]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        idx = order[i : i + batch]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(images[idx]), masks[idx]).backward()
        opt.step()
    return n / (time.perf_counter() - t0)


def fit_epoch(cfg: Any, data: Any) -> tuple[float, dict[str, float]]:
    """One epoch of ``fit`` as a trial runs it: (training img per wall second, validation included; row)."""
    from hpsearch.models import create_model
    from hpsearch.training.loop import fit
    from hpsearch.training.session import build_loaders

    device = torch.device("cpu")
    model = create_model(cfg.model.name, **cfg.model.kwargs)
    train, val = build_loaders(cfg, data, device)
    one = cfg.train.model_copy(update={"epochs": 1, "gallery_k": 0})
    t0 = time.perf_counter()
    row = fit(model, train, val, config=one, progress=False).history[0]
    n = row["train_img_per_s"] * row["train_time_s"]
    return n / (time.perf_counter() - t0), row


def tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    mean = np.asarray((0.485, 0.456, 0.406), np.float32) * 255
    std = np.asarray((0.229, 0.224, 0.225), np.float32) * 255
    x = torch.from_numpy(((np.asarray(data.train_images, np.float32) - mean) / std).transpose(0, 3, 1, 2))
    y = torch.from_numpy(np.asarray(data.train_masks, np.float32))[:, None]
    return x.contiguous(), y


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="Kvasir-SEG folder (default ../shared/data/kvasir-seg)")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="24 synthetic images, 1 round: checks the script")
    args = ap.parse_args(argv)
    from hpsearch.training.session import prepare_data

    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory()
    data_dir = None if args.quick else find_kvasir(args.data)
    official = data_dir is not None
    if data_dir is None:
        data_dir = synthetic_jpeg_dataset(Path(tmp.name) / "synth", 24, size=160)
    cfg = laptop_config(data_dir, batch=args.batch, official=official)
    data = prepare_data(cfg.data, data_dir, progress=False)
    x, y = tensors(data)
    rows: list[dict[str, float]] = []

    def run_fit() -> float:
        rate, row = fit_epoch(cfg, data)
        rows.append(row)
        return rate

    def run_bare() -> float:
        from hpsearch.models import create_model

        return bare_epoch(create_model(cfg.model.name, **cfg.model.kwargs), x, y, args.batch)

    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rates = interleaved({"fit": run_fit, "bare": run_bare}, 1 if args.quick else args.rounds, log=log,
                        warmup=True)
    epoch_s = median(r["train_time_s"] + r["val_time_s"] for r in rows)
    fig = {
        "laptop.image_size": cfg.data.image_size,
        "laptop.base_width": cfg.model.kwargs["base_width"],
        "laptop.batch": args.batch,
        "laptop.n_train": len(data.train_images),
        "laptop.n_val": len(data.val_images),
        "laptop.fit_img_per_s": median(rates["fit"]),
        "laptop.bare_img_per_s": median(rates["bare"]),
        "laptop.fit_vs_bare": median(rates["fit"]) / median(rates["bare"]),
        "laptop.val_share": median(r["val_time_s"] / (r["train_time_s"] + r["val_time_s"]) for r in rows),
        "laptop.epoch_s": epoch_s,
        "laptop.trial_25_epochs_min": epoch_s * TRIAL_EPOCHS / 60,
    }
    res = {"command": " ".join(["python", "benchmarks/laptop.py", *(argv or sys.argv[1:])]),
           "hardware": hardware(), "data": str(data_dir) if official else "synthetic",
           "figures": fig, "rounds": rates, "total_s": time.perf_counter() - t_start}
    jp, mp = write_results(Path(args.out), "laptop", res, "Laptop scale: fit against a bare loop")
    log(f"fit {fig['laptop.fit_img_per_s']:.1f} img/s vs bare {fig['laptop.bare_img_per_s']:.1f} img/s: "
        f"{fig['laptop.fit_vs_bare']:.1%}; epoch {epoch_s:.1f} s, a {TRIAL_EPOCHS}-epoch trial "
        f"{fig['laptop.trial_25_epochs_min']:.1f} min; wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
