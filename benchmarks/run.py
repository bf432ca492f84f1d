"""CPU benchmarks of hpsearch: ratios measured side by side in one run.

    python benchmarks/run.py                   # everything (a few minutes on 2 cores)
    python benchmarks/run.py --quick           # a smoke pass on synthetic data (numbers are rough)
    python benchmarks/run.py --only data cbam  # some sections
    python benchmarks/run.py --out bench-out   # also write cpu.json and cpu.md there

data      input pipeline img/s per CPU second: the decoded uint8 cache through ``build_loaders``' DataLoader
          (presets 'none' and 'basic') against the report-style per-item PIL decode + resize of the original
          JPEGs. Real Kvasir-SEG (official split) when present, else synthetic JPEGs.
train     one epoch (train + validation) of a small U-Net at 256^2: ``fit`` on our loaders against the
          report-style loop (PIL per item, float32, loss read back every step, validation one image at a
          time with the metric on the host); the validation share of each epoch.
cbam      ``fit``'s training img/s of CBAM U-Net (fused and plain attention) relative to the U-Net, and the
          full-size tensor traffic of one CBAM module's forward and backward.
overhead  real trials through ``hpsearch worker`` (SQLite, artifact store, gallery, curves, checkpoint) on
          synthetic 256^2 data: overhead_s / trial_wall_s as the objective records it, and its parts.

Rates of compared variants are measured in alternating rounds (A B A B ...) in this process, so a busy
machine slows both sides alike; no threshold is asserted anywhere.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ReportStyleDataset,
    find_kvasir,
    fit_rate,
    hardware,
    interleaved,
    loader_rate,
    median,
    naive_train,
    our_loader,
    pipeline_rates,
    prepare,
    report_loader,
    run_trials,
    synthetic_jpeg_dataset,
    write_results,
)

CPU = torch.device("cpu")
SECTIONS = ("data", "train", "cbam", "overhead")
SMALL_UNET = {"base_width": 4, "depth": 3}


def log(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------------ data
def bench_data(data_dir: Path, prepared: Any, args: argparse.Namespace, fig: dict) -> None:
    log("\n== data pipeline: decoded cache + our DataLoader vs report-style PIL decode (img/s per core) ==")
    rates = pipeline_rates(prepared, data_dir, n_pil=40 if args.quick else 160, rounds=1 if args.quick else 3,
                           log=log)
    cores = os.cpu_count() or 1
    # Worker processes: their CPU time is not this process's, so this rate is wall clock.
    rates["cache_basic_workers_wall"] = median(loader_rate(our_loader(prepared, "basic", 8, cores),
                                                           time.perf_counter) for _ in range(2 - args.quick))
    arr, t0 = np.asarray(prepared.train_images), time.process_time()
    for i in range(len(arr)):
        np.array(arr[i])
    rates["cache_read"] = len(arr) / (time.process_time() - t0)
    for name, rate in rates.items():
        fig[f"data.{name}_img_per_s"] = rate
        if name != "pil":
            fig[f"data.{name}_vs_pil"] = rate / rates["pil"]
        log(f"  {name:<26} {rate:>10,.0f} img/s  {rate / rates['pil']:>7.2f}x")
    fig["data.loader_workers"] = cores


# ----------------------------------------------------------------------------------------------- train
def naive_epoch(model: torch.nn.Module, data_dir: Path, train: list[str], val: list[str], batch: int) -> dict:
    """The report-style epoch: train (common.naive_train), then validate one image at a time on the host."""
    t0 = time.perf_counter()
    naive_train(model, report_loader(data_dir, train, batch), CPU)
    t1 = time.perf_counter()
    model.eval()
    ds, dices = ReportStyleDataset(data_dir, val, flips=False), []
    with torch.no_grad():
        for x, y in (ds[i] for i in range(len(ds))):
            pred, gt = (torch.sigmoid(model(x[None]))[0] > 0.5).numpy(), y.numpy() > 0.5
            total = float(pred.sum() + gt.sum())
            dices.append(1.0 if total == 0 else 2 * float((pred & gt).sum()) / total)
    return {"n_train": len(train), "train_s": t1 - t0, "val_s": time.perf_counter() - t1}


def fit_epoch(model: torch.nn.Module, prepared: Any, batch: int) -> dict:
    """One epoch of ``fit`` on the CPU loaders of ``build_loaders``, with fit's own train/val times."""
    from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
    from hpsearch.training.loop import fit
    from hpsearch.training.session import build_loaders

    cfg = RunConfig(data=DataConfig(augmentation="basic", augment_on="cpu"),
                    train=TrainConfig(batch_size=batch, device="cpu", epochs=1, compile="off"))
    train, val = build_loaders(cfg, prepared, CPU)
    h = fit(model, train, val, config=cfg.train, progress=False).history[0]
    return {"n_train": len(train) * batch, "train_s": h["train_time_s"], "val_s": h["val_time_s"]}


def bench_train(data_dir: Path, prepared: Any, args: argparse.Namespace, fig: dict) -> None:
    from hpsearch.models import create_model

    log("\n== one epoch (train + validation) of a small U-Net at 256^2: fit vs the report-style loop ==")
    n_tr, n_va, batch = (8, 4, 4) if args.quick else (72, 8, 8)  # 9:1 like the official split (792 / 88)
    p = dataclasses.replace(prepared, train_images=prepared.train_images[:n_tr],
                            train_masks=prepared.train_masks[:n_tr], val_images=prepared.val_images[:n_va],
                            val_masks=prepared.val_masks[:n_va], val_stems=prepared.val_stems[:n_va])
    train_stems = sorted(prepared.split.train)[:n_tr]
    torch.manual_seed(0)
    base = create_model("unet", **SMALL_UNET)
    runs: dict[str, list[dict]] = {"fit": [], "naive": []}

    def run(kind: str) -> float:
        model, t0 = copy.deepcopy(base), time.process_time()
        r = fit_epoch(model, p, batch) if kind == "fit" else naive_epoch(model, data_dir, train_stems,
                                                                         list(p.val_stems), batch)
        runs[kind].append(r)
        return r["n_train"] / (time.process_time() - t0)  # CPU seconds of the whole epoch, loaders included

    rates = interleaved({k: (lambda k=k: run(k)) for k in runs}, 1 if args.quick else 2, log=log, warmup=True)
    for kind in runs:
        records = runs[kind][1:]  # without the warm-up call
        fig[f"train.{kind}_epoch_img_per_s"] = median(rates[kind])
        fig[f"train.{kind}_val_share"] = median(r["val_s"] / (r["train_s"] + r["val_s"]) for r in records)
    fig["train.fit_vs_naive"] = fig["train.fit_epoch_img_per_s"] / fig["train.naive_epoch_img_per_s"]
    log(f"  fit vs naive {fig['train.fit_vs_naive']:.2f}x; validation share "
        f"fit {fig['train.fit_val_share']:.1%}, naive {fig['train.naive_val_share']:.1%}")


# ------------------------------------------------------------------------------------------------ cbam
def tensor_passes(module: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Aten ops on full-size tensors in one forward and one backward, and the bytes they move in units of
    one input tensor (views excluded): a device-independent tally of eager execution's memory traffic."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    views = ("expand", "detach", "view", "slice", "select", "unsqueeze", "permute", "alias", "t.default")

    class Tally(TorchDispatchMode):
        ops, nbytes = 0, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            big = [t for t in tree_flatten((args, kwargs, out))[0]
                   if isinstance(t, torch.Tensor) and t.numel() >= x.numel() // 2]
            if big and not any(v in str(func) for v in views):
                self.ops += 1
                self.nbytes += sum(t.numel() * t.element_size() for t in big)
            return out

    xx = x.detach().clone().requires_grad_(True)  # made outside the tally, like the gradient below
    with Tally() as fwd:
        out = module(xx)
    grad = torch.randn_like(out)
    with Tally() as bwd:
        out.backward(grad)
    per = x.numel() * x.element_size()
    return {"forward_ops": fwd.ops, "forward_passes": fwd.nbytes / per,
            "backward_ops": bwd.ops, "backward_passes": bwd.nbytes / per}


def bench_cbam(args: argparse.Namespace, fig: dict) -> None:
    from hpsearch.models import create_model
    from hpsearch.models.attention import CBAM, FusedCBAM, set_cbam_fused

    log("\n== CBAM U-Net training img/s relative to U-Net (fit, preloaded tensors, float32) ==")
    batch, size, steps = (2, 128, 1) if args.quick else (4, 256, 2)
    gen = torch.Generator().manual_seed(0)
    data = [(torch.randn(batch, 3, size, size, generator=gen),
             (torch.rand(batch, 1, size, size, generator=gen) < 0.3).float())]
    torch.manual_seed(0)
    models = {name: create_model(name, **SMALL_UNET) for name in ("unet", "cbam_unet")}
    models["cbam_unet_plain"] = set_cbam_fused(copy.deepcopy(models["cbam_unet"]), False)
    runs = {k: (lambda m=m: fit_rate(m, data * steps, data, batch=batch, steps=steps, compiled=False,
                                     device=CPU)["img_per_s"]) for k, m in models.items()}
    rates = {k: median(v) for k, v in interleaved(runs, 1 if args.quick else 3, log=log, warmup=True).items()}
    for k, rate in rates.items():
        fig[f"cbam.{k}_img_per_s"] = rate
    fig["cbam.fused_vs_unet"] = rates["cbam_unet"] / rates["unet"]
    fig["cbam.plain_vs_unet"] = rates["cbam_unet_plain"] / rates["unet"]
    torch.manual_seed(0)
    plain, fused = CBAM(32), FusedCBAM(32)
    fused.load_state_dict(plain.state_dict())
    x = torch.randn(4, 32, 64, 64, generator=gen)
    for name, module in (("plain", plain), ("fused", fused)):
        for k, v in tensor_passes(module, x).items():
            fig[f"cbam.{name}_module_{k}"] = v
    log(f"  CBAM/U-Net: fused {fig['cbam.fused_vs_unet']:.1%}, plain {fig['cbam.plain_vs_unet']:.1%}; one "
        f"module's backward: fused {fig['cbam.fused_module_backward_passes']:.1f} tensor passes, plain "
        f"{fig['cbam.plain_module_backward_passes']:.1f}")


# -------------------------------------------------------------------------------------------- overhead
def bench_overhead(args: argparse.Namespace, tmp: Path, fig: dict) -> dict:
    from hpsearch.data.synth import make_synthetic

    log("\n== study overhead: real trials through hpsearch worker (SQLite + artifact store) ==")
    n_trials, epochs, n_img = (1, 1, 16) if args.quick else (3, 12, 40)
    spec = {
        "name": "bench_overhead",
        "metric": "val_dice",
        "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
        "fixed": {
            "model": {"name": "unet", "kwargs": SMALL_UNET},
            "train": {"epochs": epochs, "batch_size": 8, "loss": "bce_dice", "gallery_k": 4, "device": "cpu"},
            "data": {"image_size": 256, "augmentation": "basic", "val_fraction": 0.2, "test_fraction": 0.1},
        },
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
    }
    data_dir = make_synthetic(tmp / "overhead-data", n=n_img, size=256, seed=1)
    out = run_trials(spec, data_dir, tmp / "overhead", n_trials=n_trials)
    shares = [t["overhead_share"] for t in out["trials"] if "overhead_share" in t]
    if len(shares) < n_trials:
        raise RuntimeError(f"not every trial completed: {out['trials']}")
    fig["overhead.median_share"] = median(shares)
    fig["overhead.max_share"] = max(shares)
    fig["overhead.median_trial_wall_s"] = median(t["trial_wall_s"] for t in out["trials"])
    fig["overhead.median_record_s"] = median(t["record_s"] for t in out["trials"])
    for k, v in out["parts_s_per_trial"].items():
        fig[f"overhead.{k}_s_per_trial"] = v
    fig["overhead.gallery_calls_per_trial"] = out["calls_per_trial"].get("gallery", 0)
    for t in out["trials"]:
        log(f"  trial {t['number']}: wall {t['trial_wall_s']:.1f} s, overhead {t['overhead_s']:.3f} s "
            f"({t['overhead_share']:.2%}), storage writes {t['record_s']:.3f} s")
    log("  per trial: " + ", ".join(f"{k} {v:.3f} s" for k, v in out["parts_s_per_trial"].items()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="Kvasir-SEG folder (default: HPSEARCH_DATA or ../shared/data/kvasir-seg)")
    ap.add_argument("--out", help="folder for cpu.json and cpu.md")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--quick", action="store_true", help="synthetic data, tiny sizes, one round: a smoke")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads (default 1: rates per core)")
    args = ap.parse_args(argv)
    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="hpsearch-bench-"))
    old_cache = os.environ.get("HPSEARCH_CACHE")
    os.environ["HPSEARCH_CACHE"] = str(tmp / "cache")  # never touch the user's cache
    command = " ".join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    res: dict[str, Any] = {"hardware": hardware(), "figures": {}, "details": {}, "command": command}
    fig = res["figures"]
    log(f"hardware: {res['hardware']}")
    t0 = time.perf_counter()
    try:
        if {"data", "train"} & set(args.only):
            real = None if args.quick and not args.data else find_kvasir(args.data)
            data_dir = real or synthetic_jpeg_dataset(tmp / "synthetic", 48 if args.quick else 240)
            t1 = time.perf_counter()
            prepared = prepare(data_dir, official=real is not None)
            fig["data.cache_build_s"] = time.perf_counter() - t1
            kind = "Kvasir-SEG official split" if real else "synthetic 576x576 JPEG"
            res["data"] = f"{kind} at {data_dir}: {len(prepared.train_images)} train / " \
                          f"{len(prepared.val_images)} val"
            log(res["data"])
            if "data" in args.only:
                bench_data(data_dir, prepared, args, fig)
            if "train" in args.only:
                bench_train(data_dir, prepared, args, fig)
        if "cbam" in args.only:
            bench_cbam(args, fig)
        if "overhead" in args.only:
            res["details"]["overhead"] = bench_overhead(args, tmp, fig)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.environ.pop("HPSEARCH_CACHE")
        if old_cache is not None:
            os.environ["HPSEARCH_CACHE"] = old_cache
    res["total_s"] = time.perf_counter() - t0
    if args.out:
        jp, mp = write_results(Path(args.out), "cpu", res, "hpsearch CPU benchmarks")
        log(f"\nwrote {jp} and {mp}")
    log("\n" + "\n".join(f"{k:<48} {v:,.4g}" for k, v in fig.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
