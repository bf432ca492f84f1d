"""GPU benchmark of hpsearch: one script, a few minutes, gpu.json + gpu.md.

    python benchmarks/gpu.py --data /path/to/kvasir-seg --out gpu-results   # the original JPEGs
    python benchmarks/gpu.py --data benchmarks/gpu-cache --out "$OUT"       # resized copy (make_cache.py)
    python benchmarks/gpu.py --smoke --device cpu                           # check the script on a CPU

Every training rate comes from ``fit`` itself (bf16 autocast, channels_last, cuDNN autotuning on CUDA):
epoch 1 warms up, epoch 2 is timed. Sections (each records its own error and the script goes on):

steps     U-Net and CBAM U-Net (fused attention; plain attention at the first batch size) at batch 16/32/8,
          eager and torch.compile'd, on one batch already on the device: img/s, first-step time, peak
          memory; CBAM U-Net / U-Net; compile break-even in steps next to the steps of a 25-epoch trial.
pipeline  the U-Net at batch 16 for one epoch of the split fed by DeviceBatches ('basic' on the device), by
          the CPU DataLoader path (albumentations in worker processes) and by a preloaded batch.
report    with original images: the report-style loop end to end (PIL per item, num_workers=0, float32,
          batch 8), and run.py's CPU data-pipeline ratios on this machine.
trial     one real 25-epoch trial through ``hpsearch worker`` (SQLite, artifact store, checkpoint,
          gallery, curves) of the default U-Net at batch 16, compile "auto": wall time, overhead share,
          validation share of an epoch, train img/s, peak memory.

Results are written after every section, so a run cut short keeps what it measured. ``--budget-s`` skips
every compile not yet started once the run has used that many seconds (each is recorded as skipped); the
compiled cases run in the order the targets need them, so the ones skipped first are batch 8 and plain
attention.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CACHE_MARKER,
    REPO,
    find_kvasir,
    fit_rate,
    hardware,
    naive_train,
    pipeline_rates,
    prepare,
    report_loader,
    run_trials,
    sync,
    write_results,
)

from hpsearch.errors import HpsearchError  # noqa: E402
from hpsearch.training.device import resolve_device  # noqa: E402

T_START = time.perf_counter()
TRIAL_IMAGES = 792  # training images of the official split after the validation carve


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T_START:6.1f}s] {msg}", flush=True)


class Bench:
    """The run's settings, data and results; ``save`` writes them."""

    def __init__(self, args: argparse.Namespace, data_dir: Path, res: dict[str, Any]) -> None:
        self.args, self.data_dir, self.res = args, data_dir, res
        self.device = resolve_device(args.device)  # a clear error where the device is missing
        self.original = not (data_dir / CACHE_MARKER).exists()
        self.prepared = prepare(data_dir, official=not args.smoke, size=args.size)
        self.fig: dict[str, Any] = res["figures"]

    def model(self, name: str, *, fused: bool = True) -> torch.nn.Module:
        from hpsearch.models import create_model
        from hpsearch.models.attention import set_cbam_fused

        torch.manual_seed(0)
        kwargs = {"base_width": 8, "depth": 3} if self.args.smoke else {}
        return set_cbam_fused(create_model(name, **kwargs), fused)

    def batch(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Real images, normalised, on the device (never zeros: those can time unrealistically)."""
        from hpsearch.data.device_augment import DeviceBatches

        p = self.prepared
        x, y = next(iter(DeviceBatches(p.train_images[:n], p.train_masks[:n], batch_size=n,
                                       device=self.device, shuffle=False)))
        if self.device.type == "cuda":  # fit's layout, so that moving the batch costs nothing per step
            x = x.contiguous(memory_format=torch.channels_last)
        return [(x, y)]

    def save(self) -> None:
        self.res["total_s"] = time.perf_counter() - T_START
        write_results(Path(self.args.out), "gpu", self.res, "hpsearch GPU benchmark")


# -------------------------------------------------------------------------------------------------- steps
def bench_steps(b: Bench) -> None:
    """img/s, first step and peak memory per model, batch size and compile setting."""
    a = b.args
    batches = [2, 4] if a.smoke else a.batches
    steps = 3 if a.smoke else a.steps
    # One static graph per batch size, as a trial has; restored for the later sections.
    dynamic = torch._dynamo.config.automatic_dynamic_shapes
    torch._dynamo.config.automatic_dynamic_shapes = False
    try:
        for case in step_cases(batches, compile_too=not a.no_compile):
            label, name, fused, batch, compiled = case
            mode = "compiled" if compiled else "eager"
            # Compiles cost tens of seconds each: past the budget they are skipped, the cheapest-to-lose
            # last (step_cases orders them by how much the targets need them).
            if compiled and time.perf_counter() - T_START > a.budget_s:
                log(f"steps: {label} b{batch} {mode}: skipped (past --budget-s {a.budget_s:.0f})")
                b.fig[f"steps.{label}.b{batch}.{mode}.skipped"] = "budget"
                continue
            torch._dynamo.reset()  # every compiled case pays its own compilation, as a trial does
            data = b.batch(batch)
            try:
                r = fit_rate(b.model(name, fused=fused), data * steps, data, batch=batch, steps=steps,
                             compiled=compiled, device=b.device)
            except Exception as exc:  # one failing case (a compile, a non-finite loss) must not end the table
                b.res["errors"][f"steps.{label}.b{batch}.{mode}"] = f"{type(exc).__name__}: {exc}"
                log(f"steps: {label} b{batch} {mode}: FAILED {type(exc).__name__}: {exc}")
                b.save()
                continue
            for k, v in r.items():
                b.fig[f"steps.{label}.b{batch}.{mode}.{k}"] = v
            log(f"steps: {label:<16} b{batch:<3} {mode:<8} {r['img_per_s']:8.1f} img/s, first step "
                f"{r['first_step_s']:.1f} s, peak {r['peak_mib'] or 0:.0f} MiB")
            b.save()
    finally:
        torch._dynamo.config.automatic_dynamic_shapes = dynamic
    derive_step_figures(b.fig, batches)


def step_cases(batches: list[int], *, compile_too: bool) -> list[tuple[str, str, bool, int, bool]]:
    """(label, model, fused attention, batch, compiled): every eager case, then the compiled ones.

    Compiled cases come in the order the targets need them: both models at the first two batch sizes (the
    1,000 img/s and CBAM/U-Net targets), then the rest (the smallest batch, plain attention).
    """
    variants = [("unet", "unet", True), ("cbam_unet", "cbam_unet", True),
                ("cbam_unet_plain", "cbam_unet", False)]
    eager = [(lab, name, fused, bt, False) for lab, name, fused in variants
             for bt in (batches if fused else batches[:1])]
    if not compile_too:
        return eager
    main = [(lab, name, True, bt, True) for bt in batches[:2] for lab, name, _ in variants[:2]]
    rest = [(lab, name, fused, bt, True) for lab, name, fused in variants
            for bt in (batches if fused else batches[:1]) if (lab, name, fused, bt, True) not in main]
    return eager + main + rest


def derive_step_figures(fig: dict[str, Any], batches: list[int]) -> None:
    """CBAM U-Net / U-Net, and the compile break-even (compile time / per-step gain) per batch size."""
    for batch in batches:
        for mode in ("eager", "compiled"):
            unet = fig.get(f"steps.unet.b{batch}.{mode}.img_per_s")
            for label in ("cbam_unet", "cbam_unet_plain"):
                other = fig.get(f"steps.{label}.b{batch}.{mode}.img_per_s")
                if unet and other:
                    fig[f"steps.{label}.b{batch}.{mode}.vs_unet"] = other / unet
        for label in ("unet", "cbam_unet"):
            e, c = (f"steps.{label}.b{batch}.{m}" for m in ("eager", "compiled"))
            if f"{c}.img_per_s" not in fig:
                continue
            gain_s = batch / fig[f"{e}.img_per_s"] - batch / fig[f"{c}.img_per_s"]
            compile_s = fig[f"{c}.first_step_s"] - fig[f"{e}.first_step_s"]
            fig[f"compile.{label}.b{batch}.compile_s"] = compile_s
            fig[f"compile.{label}.b{batch}.step_gain_ms"] = 1000 * gain_s
            fig[f"compile.{label}.b{batch}.break_even_steps"] = compile_s / gain_s if gain_s > 0 else "never"
            fig[f"compile.{label}.b{batch}.steps_in_25_epochs"] = 25 * (TRIAL_IMAGES // batch)


# ----------------------------------------------------------------------------------------------- pipeline
def bench_pipeline(b: Bench) -> None:
    """One epoch of the U-Net step fed by each input path, against a batch already on the device."""
    from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
    from hpsearch.training.session import build_loaders

    batch = 4 if b.args.smoke else 16
    for compiled in (False, True)[: 1 if b.args.no_compile else 2]:
        mode = "compiled" if compiled else "eager"
        if compiled and time.perf_counter() - T_START > b.args.budget_s:
            log(f"pipeline: {mode}: skipped (past --budget-s {b.args.budget_s:.0f})")
            continue
        torch._dynamo.reset()
        model = b.model("unet")  # one model per mode: compiled once, reused by all three sources
        sources: dict[str, Any] = {}
        for where in ("device", "cpu"):
            cfg = RunConfig(data=DataConfig(augmentation="basic", augment_on=where),
                            train=TrainConfig(batch_size=batch, device=str(b.device)))
            sources["device_batches" if where == "device" else "dataloader"] = build_loaders(
                cfg, b.prepared, b.device)[0]
        steps = 5 if b.args.smoke else len(sources["device_batches"])
        data = b.batch(batch)
        sources = {"preloaded": data * steps, **sources}
        rates = {}
        for label, src in sources.items():
            rates[label] = fit_rate(model, src, data, batch=batch, steps=steps, compiled=compiled,
                                    device=b.device)["img_per_s"]
            b.fig[f"pipeline.{mode}.{label}.img_per_s"] = rates[label]
            b.fig[f"pipeline.{mode}.{label}.vs_preloaded"] = rates[label] / rates["preloaded"]
            log(f"pipeline: {mode:<8} {label:<15} {rates[label]:8.1f} img/s "
                f"({rates[label] / rates['preloaded']:.1%} of preloaded)")
        b.fig[f"pipeline.{mode}.dataloader_workers"] = sources["dataloader"].num_workers
        b.save()


# ------------------------------------------------------------------------------------------------- report
def bench_report(b: Bench) -> None:
    """The report-style loop end to end on this machine, and run.py's per-core data ratios here."""
    if not b.original:
        b.res["details"]["report"] = "skipped: needs the original images, not a make_cache.py copy"
        return
    stems = list(b.prepared.split.train)[: 32 if b.args.smoke else 400]
    loader = report_loader(b.data_dir, stems, 8, b.args.size)
    model = b.model("unet")
    sync(b.device)
    t0 = time.perf_counter()
    n = naive_train(model, loader, b.device)
    b.fig["report.report_style_img_per_s"] = n / (time.perf_counter() - t0)
    rates = pipeline_rates(b.prepared, b.data_dir, n_pil=len(stems), rounds=1, log=log)
    b.fig["report.cpu_pil_img_per_s"] = rates["pil"]
    b.fig["report.cpu_cache_none_vs_pil"] = rates["cache_none"] / rates["pil"]
    b.fig["report.cpu_cache_basic_vs_pil"] = rates["cache_basic"] / rates["pil"]
    log(f"report: report-style {b.fig['report.report_style_img_per_s']:.1f} img/s end to end; CPU data path "
        f"per core vs PIL: cache {b.fig['report.cpu_cache_none_vs_pil']:.1f}x, "
        f"cache + basic {b.fig['report.cpu_cache_basic_vs_pil']:.1f}x")


# -------------------------------------------------------------------------------------------------- trial
def bench_trial(b: Bench) -> None:
    """One real trial through the worker: overhead, validation share, img/s, peak memory, Dice."""
    a = b.args
    spec = {
        "name": "gpu_trial",
        "metric": "val_dice",
        "space": {"train.lr": {"type": "float", "low": 3e-4, "high": 3e-4}},
        "fixed": {
            "model": {"name": "unet", "kwargs": {"base_width": 8, "depth": 3} if a.smoke else {}},
            "train": {"epochs": 2 if a.smoke else a.trial_epochs, "batch_size": 4 if a.smoke else 16,
                      "optimizer": "adamw", "weight_decay": 1e-4, "loss": "bce_dice",
                      "compile": a.trial_compile, "device": str(b.device)},
            "data": {"image_size": a.size, "augmentation": "basic",
                     "split_file": None if a.smoke else "kvasir-official"},
        },
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
    }
    work = Path(tempfile.mkdtemp(prefix="hpsearch-gpu-trial-"))
    try:
        out = run_trials(spec, b.data_dir, work, n_trials=1)
        row = out["trials"][0]
        b.res["details"]["trial"] = out
        if row["state"] != "COMPLETE":
            raise RuntimeError(f"trial {row['state']}: {row['error']}")
        for k in ("trial_wall_s", "fit_wall_s", "overhead_share", "val_share_of_epoch", "train_img_per_s",
                  "peak_mib", "best_val_dice"):
            b.fig[f"trial.{k}"] = row[k]
        for f in Path(row["out_dir"]).glob("*.png"):  # gallery and curves come back with the results
            shutil.copyfile(f, Path(a.out) / f"trial_{f.name}")
        log(f"trial: {row['trial_wall_s']:.1f} s (fit {row['fit_wall_s']:.1f} s), overhead "
            f"{row['overhead_share']:.2%}, validation {row['val_share_of_epoch']:.1%} of an epoch, "
            f"{row['train_img_per_s']:.0f} img/s, peak {row['peak_mib'] or 0:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


SECTIONS = {"steps": bench_steps, "pipeline": bench_pipeline, "report": bench_report, "trial": bench_trial}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="Kvasir-SEG folder, or benchmarks/gpu-cache (default: HPSEARCH_DATA, "
                    "../shared/data/kvasir-seg, then benchmarks/gpu-cache)")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu-results")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30, help="steps per epoch in the step table")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 8], help="batch sizes, steps table")
    ap.add_argument("--budget-s", type=float, default=330.0, help="start no compile after this many seconds")
    ap.add_argument("--trial-epochs", type=int, default=25)
    ap.add_argument("--trial-compile", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--no-compile", action="store_true", help="skip every torch.compile measurement")
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS))
    ap.add_argument("--smoke", action="store_true", help="tiny model and synthetic images: check the script")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size = 64
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        resolve_device(args.device)
    except HpsearchError as exc:
        raise SystemExit(f"{exc} (--smoke --device cpu checks the script on a CPU)") from None
    tmp = Path(tempfile.mkdtemp(prefix="hpsearch-gpu-"))
    # Keep the decoded arrays out of the user's cache (and remove them at the end).
    os.environ.setdefault("HPSEARCH_CACHE", str(tmp / "cache"))
    try:
        if args.smoke and not args.data:
            from hpsearch.data.synth import make_synthetic

            data_dir = make_synthetic(tmp / "synthetic", n=40, size=64, seed=0)
        else:
            data_dir = find_kvasir(args.data) or find_kvasir(str(REPO / "benchmarks" / "gpu-cache"))
        if data_dir is None:
            raise SystemExit("no data: pass --data KVASIR_DIR (or a make_cache.py folder), or --smoke")
        res: dict[str, Any] = {"hardware": hardware(), "command": " ".join(["python", *sys.argv]),
                               "data": str(data_dir), "figures": {}, "errors": {}, "details": {}}
        log(f"hardware: {res['hardware']}; data: {data_dir}")
        bench = Bench(args, data_dir, res)
        for name, fn in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            try:
                fn(bench)
            except Exception as exc:  # one failing section must not lose the others
                res["errors"][name] = f"{type(exc).__name__}: {exc}"
                log(f"{name}: FAILED {res['errors'][name]}")
                traceback.print_exc()
            bench.save()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print((Path(args.out) / "gpu.md").read_text(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
