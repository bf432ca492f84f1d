"""GPU benchmark of hpsearch: one script, a few minutes, JSON + Markdown results.

    python benchmarks/gpu.py --data /path/to/kvasir-seg --out gpu-results     # full fidelity
    python benchmarks/gpu.py --cache benchmarks/gpu-cache --out "$OUT"        # compact cache (make_cache.py)
    python benchmarks/gpu.py --smoke --device cpu                             # check the script on a CPU

What it measures (each section records its own errors and the script goes on):

steps     training-step img/s of U-Net and CBAM U-Net (fused attention; plain attention at batch 16) at
          batch 8/16/32, eager and torch.compile'd, exactly like ``fit`` (bf16 autocast, channels_last,
          cuDNN autotuning, Adam, BCE), on batches already on the GPU; compile time, peak memory, and the
          number of steps after which compiling pays for itself.
cbam      where CBAM's time goes: one module at the first encoder level (64 x 256^2, bf16, channels_last),
          plain vs fused vs compiled, next to the ConvBlock it follows; and CBAM U-Net with only its
          attention modules compiled (regional compilation).
pipeline  (b): the same training step fed by DeviceBatches (uint8 cache on the GPU, 'basic' augmentation
          there), by the CPU DataLoader path (albumentations in worker processes), and by one batch that is
          already on the GPU; ratios against the latter.
report    with the original JPEGs (--data): the report-style run (PIL decode per item, num_workers=0,
          float32, batch 8) against ours end to end, and the CPU data-pipeline ratio of run.py.
trial     one real 25-epoch trial through the Optuna objective (SQLite storage, artifact store, gallery,
          curves, checkpoint) of the default U-Net at batch 16 with compile "auto": its wall time, the study
          overhead share, the validation share of an epoch, peak memory, train img/s.

Results go to ``--out`` (default ``$OUT`` or ``./gpu-results``) as gpu.json and gpu.md after every
section, so a run cut short still leaves what it measured. ``--budget-s`` skips optional work (compiling at
batch 8, plain-attention compile, regional compile) once the run has used that much time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    find_kvasir,
    hardware,
    loader_rate,
    md_table,
    report_loader,
    write_results,
)

T_START = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T_START:6.1f}s] {msg}", flush=True)


def elapsed() -> float:
    return time.perf_counter() - T_START


# ------------------------------------------------------------------------------------------------- data
@dataclasses.dataclass
class Data:
    train_images: np.ndarray
    train_masks: np.ndarray
    val_images: np.ndarray
    val_masks: np.ndarray
    source: str
    jpeg_dir: Path | None  # original files, for the report-style baseline
    prepared: Any = None  # hpsearch PreparedData when built from the JPEG folder


def _tile(a: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(a))
    return np.concatenate([a] * reps)[:n]


def load_data(args: argparse.Namespace) -> Data:
    if args.smoke and not (args.data or args.cache):
        rng = np.random.default_rng(0)
        s = args.size
        imgs = rng.integers(0, 256, (48, s, s, 3), dtype=np.uint8)
        masks = (rng.random((48, s, s)) < 0.3).astype(np.uint8)
        return Data(imgs[:40], masks[:40], imgs[40:], masks[40:], "random (smoke)", None)
    jpeg = find_kvasir(args.data) if not args.cache else None
    if jpeg is not None:
        from hpsearch.training.config import DataConfig
        from hpsearch.training.runner import prepare_data

        cfg = DataConfig(path=str(jpeg), split_file="kvasir-official", val_fraction=0.1, image_size=args.size)
        t0 = time.perf_counter()
        p = prepare_data(cfg, jpeg, progress=False)
        log(
            f"data: {jpeg}: {len(p.train_images)} train / {len(p.val_images)} val "
            f"({time.perf_counter() - t0:.1f} s)"
        )
        return Data(
            np.asarray(p.train_images),
            np.asarray(p.train_masks),
            np.asarray(p.val_images),
            np.asarray(p.val_masks),
            "Kvasir-SEG official split (JPEGs)",
            jpeg,
            p,
        )
    cache = Path(args.cache or "benchmarks/gpu-cache")
    if (cache / "meta.json").is_file():
        from make_cache import load_compact

        images, masks, meta = load_compact(cache)
        n_val = max(1, len(images) // 10)
        # Timing-faithful epochs: tile to the official 792 training + 88 validation images.
        data = Data(
            _tile(images[n_val:], 792),
            _tile(masks[n_val:], 792),
            _tile(images[:n_val], 88),
            _tile(masks[:n_val], 88),
            f"compact cache {cache} ({len(images)} Kvasir-SEG images, tiled to 792 + 88)",
            None,
        )
        log(f"data: {data.source}")
        return data
    raise SystemExit("no data: pass --data KVASIR_DIR or --cache DIR (benchmarks/make_cache.py), or --smoke")


# ------------------------------------------------------------------------------------------------ timing
class Clock:
    """Elapsed seconds of device work between two points (CUDA events; wall clock on the CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    @contextlib.contextmanager
    def measure(self) -> Iterator[list[float]]:
        out: list[float] = []
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield out
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1000.0)
        else:
            t0 = time.perf_counter()
            yield out
            out.append(time.perf_counter() - t0)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# -------------------------------------------------------------------------------------------------- steps
def build_model(name: str, args: argparse.Namespace, fused: bool = True) -> torch.nn.Module:
    from hpsearch.models import create_model
    from hpsearch.models.attention import set_cbam_fused

    kwargs = {"base_width": 8, "depth": 3} if args.smoke else {}
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    return set_cbam_fused(model, fused)


class Trainer:
    """The training step of ``fit``: bf16 autocast on CUDA, channels_last, Adam, BCE on float32 logits."""

    def __init__(self, model: torch.nn.Module, device: torch.device, compiled: bool) -> None:
        from hpsearch.training.config import TrainConfig
        from hpsearch.training.device import autocast
        from hpsearch.training.losses import create_loss
        from hpsearch.training.optim import create_optimizer

        self.device = device
        self.channels_last = device.type == "cuda"
        self.model = model.to(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = create_optimizer(self.model.parameters(), TrainConfig(lr=1e-4))
        self.loss_fn = create_loss("bce")
        self.forward = torch.compile(self.model) if compiled else self.model
        self.compiled = compiled
        self.autocast = lambda: autocast(device, amp=True)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from hpsearch.training.fit import _to_device

        # fit's own transfer: uint8 batches from the CPU path are normalised on the device there.
        x, y = _to_device((x, y), self.device, self.channels_last)
        with self.autocast():
            logits = self.forward(x)
        loss = self.loss_fn(logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


def fixed_batch(data: Data, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Real images, normalised, already on the device (never zeros: those can time unrealistically)."""
    from hpsearch.data.device_augment import normalize_batch

    idx = np.arange(batch) % len(data.train_images)
    x = normalize_batch(torch.from_numpy(data.train_images[idx]).to(device))
    y = torch.from_numpy(data.train_masks[idx]).to(device).unsqueeze(1).float()
    return x.contiguous(), y


def time_steps(trainer: Trainer, source: Callable[[], Iterable], steps: int, clock: Clock) -> float:
    """img/s over ``steps`` steps drawn from ``source()`` (re-created when exhausted)."""
    n = 0
    it = iter(source())
    with clock.measure() as t:
        for _ in range(steps):
            try:
                x, y = next(it)
            except StopIteration:
                it = iter(source())
                x, y = next(it)
            trainer.step(x, y)
            n += x.shape[0]
    return n / t[0]


def bench_steps(data: Data, args: argparse.Namespace, device: torch.device, res: dict) -> dict:
    """Model-step img/s by model, batch and compile; keeps trainers for later sections."""
    clock = Clock(device)
    out: dict[str, Any] = {"rows": []}
    res["steps"] = out
    # One static graph per batch size, as a trial has (its training batch size never changes); the
    # setting is restored at the end so that later sections (the real trial) run with the defaults.
    dynamic_default = torch._dynamo.config.automatic_dynamic_shapes
    torch._dynamo.config.automatic_dynamic_shapes = False
    try:
        _step_table(data, args, device, res, out, clock)
    finally:
        torch._dynamo.config.automatic_dynamic_shapes = dynamic_default
    return out


def _step_table(
    data: Data, args: argparse.Namespace, device: torch.device, res: dict, out: dict, clock: Clock
) -> None:
    trainers: dict[tuple[str, bool, bool], Trainer] = {}
    batches = [2, 4] if args.smoke else args.batches  # 16 first: the target batch size is compiled first
    variants = [("unet", True), ("cbam_unet", True), ("cbam_unet", False)]
    steps = 3 if args.smoke else args.steps
    for compiled in (False, True):
        if compiled and args.no_compile:
            break
        for name, fused in variants:
            for batch in batches:
                label = f"{name}{'' if name == 'unet' else (' fused' if fused else ' plain')}"
                if not fused and batch != batches[0]:
                    continue  # plain attention: one batch size is enough to compare with fused
                optional = compiled and (batch == 8 or not fused)
                if optional and elapsed() > args.budget_s:
                    out["rows"].append(
                        {"model": label, "batch": batch, "compile": compiled, "skipped": "budget"}
                    )
                    continue
                key = (name, fused, compiled)
                row: dict[str, Any] = {"model": label, "batch": batch, "compile": compiled}
                try:
                    if key not in trainers:
                        trainers[key] = Trainer(build_model(name, args, fused), device, compiled)
                    tr = trainers[key]
                    x, y = fixed_batch(data, batch, device)
                    reset_peak(device)
                    t0 = time.perf_counter()
                    tr.step(x, y)  # compile (when on) and cuDNN autotuning happen here
                    sync(device)
                    row["first_step_s"] = time.perf_counter() - t0
                    for _ in range(3 if args.smoke else 10):
                        tr.step(x, y)
                    row["img_per_s"] = time_steps(tr, lambda x=x, y=y: [(x, y)], steps, clock)
                    row["step_ms"] = 1000.0 * batch / row["img_per_s"]
                    row["peak_mib"] = peak_mib(device)
                    log(
                        f"steps: {label:<16} b{batch:<3} compile={compiled!s:<5} "
                        f"{row['img_per_s']:8.1f} img/s "
                        f"first step {row['first_step_s']:.1f} s, peak {row['peak_mib'] or 0:.0f} MiB"
                    )
                except Exception as exc:  # one failing case must not lose the others
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    log(f"steps: {label} b{batch} compile={compiled}: {row['error']}")
                    traceback.print_exc()
                out["rows"].append(row)
                write_all(res, args)
    # Ratios and compile pay-off from the rows.
    by = {(r["model"], r["batch"], r["compile"]): r for r in out["rows"] if "img_per_s" in r}
    for batch in batches:
        for comp in (False, True):
            unet = by.get(("unet", batch, comp))
            for label in ("cbam_unet fused", "cbam_unet plain"):
                c = by.get((label, batch, comp))
                if unet and c:
                    out.setdefault("cbam_vs_unet", []).append(
                        {
                            "model": label,
                            "batch": batch,
                            "compile": comp,
                            "ratio": c["img_per_s"] / unet["img_per_s"],
                        }
                    )
        for label in ("unet", "cbam_unet fused"):
            e, c = by.get((label, batch, False)), by.get((label, batch, True))
            if e and c:
                gain_s = e["step_ms"] / 1000 - c["step_ms"] / 1000
                compile_s = c["first_step_s"] - e["first_step_s"]
                steps_25 = 25 * (792 // batch)
                from hpsearch.training.config import TrainConfig
                from hpsearch.training.fit import _should_compile

                auto = _should_compile(
                    TrainConfig(epochs=25, batch_size=batch), torch.device("cuda"), 792 // batch
                )
                out.setdefault("compile_payoff", []).append(
                    {
                        "model": label,
                        "batch": batch,
                        "compile_s": compile_s,
                        "step_gain_ms": 1000 * gain_s,
                        "break_even_steps": compile_s / gain_s if gain_s > 0 else float("inf"),
                        "steps_in_25_epochs": steps_25,
                        "auto_compiles_25_epochs": auto,
                    }
                )
    res["_trainers"] = trainers


# --------------------------------------------------------------------------------------------------- cbam
def bench_cbam(data: Data, args: argparse.Namespace, device: torch.device, res: dict) -> dict:
    from hpsearch.models.attention import CBAM, FusedCBAM
    from hpsearch.models.blocks import ConvBlock

    out: dict[str, Any] = {"module": []}
    res["cbam"] = out
    clock = Clock(device)
    n, c, s = (2, 8, 32) if args.smoke else (16, 64, 256)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, s, s, generator=gen).to(device=device, dtype=dtype).contiguous(memory_format=fmt)
    g = torch.randn(n, c, s, s, generator=gen).to(device=device, dtype=dtype).contiguous(memory_format=fmt)
    torch.manual_seed(0)
    plain = CBAM(c).to(device).to(memory_format=fmt)
    fused = FusedCBAM(c).to(device).to(memory_format=fmt)
    fused.load_state_dict(plain.state_dict())
    block = ConvBlock(c, c).to(device).to(memory_format=fmt)
    conv = plain.spatial.conv
    pooled = (
        torch.randn(n, 2, s, s, generator=gen).to(device=device, dtype=dtype).contiguous(memory_format=fmt)
    )
    cases: dict[str, tuple[Callable, torch.Tensor]] = {
        f"ConvBlock({c}, {c}), for scale": (block, x),
        "CBAM plain": (plain, x),
        "CBAM fused": (fused, x),
        "spatial 7x7 conv 2->1 alone": (conv, pooled),
    }
    if not args.no_compile:
        cases["CBAM plain, compiled"] = (torch.compile(copy.deepcopy(plain)), x)
        cases["CBAM fused, compiled"] = (torch.compile(copy.deepcopy(fused)), x)
    reps = 3 if args.smoke else 20
    for label, (mod, inp) in cases.items():
        try:

            def fwd_bwd(mod: Callable = mod, inp: torch.Tensor = inp) -> None:
                xi = inp.detach().requires_grad_(True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    o = mod(xi)
                o.backward(g[:, : o.shape[1]] if o.shape[1] <= g.shape[1] else torch.ones_like(o))

            t0 = time.perf_counter()
            fwd_bwd()
            sync(device)
            first = time.perf_counter() - t0
            for _ in range(3):
                fwd_bwd()
            with clock.measure() as t:
                for _ in range(reps):
                    fwd_bwd()
            row = {"case": label, "fwd_bwd_ms": 1000 * t[0] / reps, "first_call_s": first}
            log(f"cbam: {label:<32} {row['fwd_bwd_ms']:8.3f} ms fwd+bwd")
        except Exception as exc:
            row = {"case": label, "error": f"{type(exc).__name__}: {exc}"}
            log(f"cbam: {label}: {row['error']}")
        out["module"].append(row)
    write_all(res, args)
    # Regional compilation: eager CBAM U-Net whose attention modules alone are compiled.
    if args.no_compile or elapsed() > args.budget_s:
        out["regional"] = {"skipped": "budget" if not args.no_compile else "--no-compile"}
        return out
    try:
        model = build_model("cbam_unet", args, fused=True)
        for m in model.modules():
            if isinstance(m, CBAM):
                m.compile()
        tr = Trainer(model, device, compiled=False)
        batch = 4 if args.smoke else 16
        xb, yb = fixed_batch(data, batch, device)
        t0 = time.perf_counter()
        tr.step(xb, yb)
        sync(device)
        first = time.perf_counter() - t0
        for _ in range(3 if args.smoke else 10):
            tr.step(xb, yb)
        rate = time_steps(tr, lambda: [(xb, yb)], 3 if args.smoke else args.steps, clock)
        out["regional"] = {"batch": batch, "img_per_s": rate, "first_step_s": first}
        log(
            f"cbam: CBAM U-Net with compiled attention only, b{batch}: {rate:.1f} img/s "
            f"(first step {first:.1f} s)"
        )
    except Exception as exc:
        out["regional"] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"cbam: regional compile: {out['regional']['error']}")
    return out


# ----------------------------------------------------------------------------------------------- pipeline
def bench_pipeline(data: Data, args: argparse.Namespace, device: torch.device, res: dict) -> dict:
    from hpsearch.data.device_augment import DeviceBatches
    from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
    from hpsearch.training.runner import PreparedData, build_loaders

    out: dict[str, Any] = {"rows": []}
    res["pipeline"] = out
    clock = Clock(device)
    trainers = res.get("_trainers", {})
    batch = 4 if args.smoke else 16
    for compiled in (False, True):
        tr = trainers.get(("unet", True, compiled))
        if tr is None:
            continue
        x, y = fixed_batch(data, batch, device)
        device_src = DeviceBatches(
            data.train_images, data.train_masks, batch_size=batch, device=device, preset="basic", seed=0
        )
        prepared = PreparedData(
            data_dir=Path("."),
            pairs=[],
            split=None,  # type: ignore[arg-type]
            fingerprint="",
            train_images=data.train_images,
            train_masks=data.train_masks,
            val_images=data.val_images,
            val_masks=data.val_masks,
            val_stems=[],
        )
        cfg = RunConfig(
            data=DataConfig(augmentation="basic", augment_on="cpu"),
            train=TrainConfig(batch_size=batch, device=str(device)),
        )
        cpu_loader, _ = build_loaders(cfg, prepared, device)
        steps = 5 if args.smoke else len(device_src)  # one epoch of the official split
        sources: dict[str, Callable[[], Iterable]] = {
            "preloaded batch on the GPU": lambda x=x, y=y, steps=steps: [(x, y)] * steps,
            "DeviceBatches basic (ours, GPU path)": lambda s=device_src: s,
            f"DataLoader basic, {cpu_loader.num_workers} workers (CPU path)": lambda s=cpu_loader: s,
        }
        rates: dict[str, float] = {}
        for label, src in sources.items():
            try:
                time_steps(tr, src, steps, clock)  # warm: workers started, allocator settled
                rates[label] = time_steps(tr, src, steps, clock)
                log(f"pipeline: compile={compiled!s:<5} {label:<44} {rates[label]:8.1f} img/s")
            except Exception as exc:
                log(f"pipeline: {label}: {type(exc).__name__}: {exc}")
                out["rows"].append({"compile": compiled, "source": label, "error": str(exc)})
        base = rates.get("preloaded batch on the GPU")
        for label, rate in rates.items():
            out["rows"].append(
                {
                    "compile": compiled,
                    "batch": batch,
                    "source": label,
                    "img_per_s": rate,
                    "vs_preloaded": rate / base if base else None,
                }
            )
        write_all(res, args)
    return out


# ------------------------------------------------------------------------------------------------- report
def bench_report(data: Data, args: argparse.Namespace, device: torch.device, res: dict) -> dict:
    """Report-style end to end (PIL per item, fp32, batch 8, eager) vs ours; and run.py's data ratio here."""
    out: dict[str, Any] = {}
    res["report"] = out
    if data.jpeg_dir is None or data.prepared is None:
        out["skipped"] = "needs the original JPEGs (--data)"
        return out
    from hpsearch.training.losses import create_loss

    stems = list(data.prepared.split.train)[: (32 if args.smoke else 400)]
    model = build_model("unet", args).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = create_loss("bce")
    n = 0
    sync(device)
    t0 = time.perf_counter()
    for x, y in report_loader(data.jpeg_dir, stems, 8, args.size):
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        n += x.shape[0]
    sync(device)
    out["report_style_img_per_s"] = n / (time.perf_counter() - t0)
    log(f"report: report-style end to end (PIL, fp32, batch 8): {out['report_style_img_per_s']:.1f} img/s")
    cpu = time.process_time
    out["cpu_pil_img_per_s"] = loader_rate(report_loader(data.jpeg_dir, stems, 8, args.size), cpu)
    from run import our_loader

    out["cpu_cache_basic_img_per_s"] = loader_rate(our_loader(data.prepared, "basic", 8), cpu)
    out["cpu_cache_none_img_per_s"] = loader_rate(our_loader(data.prepared, "none", 8), cpu)
    out["cpu_ratio_basic"] = out["cpu_cache_basic_img_per_s"] / out["cpu_pil_img_per_s"]
    out["cpu_ratio_none"] = out["cpu_cache_none_img_per_s"] / out["cpu_pil_img_per_s"]
    log(
        f"report: CPU pipeline ratio (one core) cache+basic {out['cpu_ratio_basic']:.1f}x, "
        f"none {out['cpu_ratio_none']:.1f}x"
    )
    write_all(res, args)
    return out


# -------------------------------------------------------------------------------------------------- trial
def bench_trial(data: Data, args: argparse.Namespace, device: torch.device, res: dict) -> dict:
    """One real trial through the objective: wall time, overhead share, validation share, peak memory."""
    import yaml

    from hpsearch.search.objective import Objective, TrialContext, build_trial_config
    from hpsearch.search.service import SearchOptions, prepare_study
    from hpsearch.search.studies import artifact_store, run_trials, worker_study
    from hpsearch.training.runner import PreparedData

    out: dict[str, Any] = {}
    res["trial"] = out
    tmp = Path(tempfile.mkdtemp(prefix="hpsearch-gpu-trial-"))
    epochs = 2 if args.smoke else args.trial_epochs
    kwargs = {"base_width": 8, "depth": 3} if args.smoke else {}
    spec = {
        "name": "gpu_trial",
        "metric": "val_dice",
        "space": {"train.lr": {"type": "float", "low": 3e-4, "high": 3e-4}},
        "fixed": {
            "model": {"name": "unet", "kwargs": kwargs},
            "train": {
                "epochs": epochs,
                "batch_size": 4 if args.smoke else 16,
                "optimizer": "adamw",
                "weight_decay": 1e-4,
                "loss": "bce_dice",
                "compile": args.trial_compile,
                "device": str(device),
            },
            "data": {"image_size": args.size, "augmentation": "basic", "val_fraction": 0.1},
        },
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "budget": {"n_trials": 1},
    }
    # The objective needs a dataset folder to verify; a tiny synthetic one stands in, and the trial's
    # arrays (real Kvasir-SEG, official split) are handed to the objective as a worker's prepared data.
    from hpsearch.data.synth import make_synthetic

    stand_in = make_synthetic(tmp / "stand-in", n=8, size=64, seed=0)
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec))
    opts = SearchOptions(
        study=str(tmp / "spec.yaml"),
        storage=f"sqlite:///{tmp}/gpu.db",
        data=str(stand_in),
        out=str(tmp / "runs"),
        artifacts=str(tmp / "artifacts"),
    )
    prep = prepare_study(opts)
    ctx = TrialContext(
        spec=prep.spec,
        data_dir=prep.data_dir,
        out_root=prep.out_root,
        artifact_store=artifact_store(prep.storage_url, opts.artifacts),
    )
    objective = Objective(ctx)
    cfg = build_trial_config(ctx, {"train.lr": 3e-4}, 0)
    real = data.prepared
    objective._data[cfg.data.model_dump_json()] = PreparedData(
        data_dir=stand_in,
        pairs=real.pairs if real else [],
        split=real.split if real else objective.data_for(cfg).split,
        fingerprint=real.fingerprint if real else "compact-cache",
        train_images=data.train_images,
        train_masks=data.train_masks,
        val_images=data.val_images,
        val_masks=data.val_masks,
        val_stems=list(real.val_stems) if real else [f"val_{i:03d}" for i in range(len(data.val_images))],
    )
    study = worker_study(prep.study_name, prep.storage, prep.spec, seed_offset=0, budgeted=True)
    reset_peak(device)
    t0 = time.perf_counter()
    try:
        run_trials(study, objective, max_trials=1)
        out["outer_wall_s"] = time.perf_counter() - t0
        _read_trial(prep, out, epochs, spec, args)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for name in ("val_worst.png", "curves.png"):  # the trial's pictures come back with the results
            for f in Path(prep.out_root).glob(f"trial_*/{name}"):
                shutil.copyfile(f, Path(args.out) / f"trial_{name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_all(res, args)
    return out


def _read_trial(prep: Any, out: dict, epochs: int, spec: dict, args: argparse.Namespace) -> None:
    import optuna

    t = optuna.load_study(study_name=prep.study_name, storage=prep.storage).get_trials()[0]
    ua = t.user_attrs
    out["state"] = t.state.name
    if "trial_wall_s" not in ua:
        out["error"] = ua.get("fail_reason") or ua.get("fail_detail")
        return
    hist = ua.get("history", [])
    later = hist[1:] or hist
    out.update(
        {
            "epochs": epochs,
            "batch": spec["fixed"]["train"]["batch_size"],
            "compile": args.trial_compile,
            "trial_wall_s": ua["trial_wall_s"],
            "fit_wall_s": ua["wall_time_s"],
            "overhead_s": ua.get("overhead_s"),
            "overhead_share": ua.get("overhead_s", float("nan")) / ua["trial_wall_s"],
            "record_s": ua.get("record_s"),
            "train_img_per_s": ua["train_img_per_s"],
            "peak_memory_mb": ua.get("peak_memory_mb"),
            "best_val_dice": ua.get("best_val_dice"),
            "first_epoch_s": hist[0]["train_time_s"] + hist[0]["val_time_s"] if hist else None,
            "val_share_of_epoch": float(
                np.median([h["val_time_s"] / (h["train_time_s"] + h["val_time_s"]) for h in later])
            )
            if later
            else None,
            "epoch_train_img_per_s_median": float(np.median([h["train_img_per_s"] for h in later]))
            if later
            else None,
            "device": ua.get("device"),
        }
    )
    log(
        f"trial: {epochs} epochs in {out['trial_wall_s']:.1f} s (fit {out['fit_wall_s']:.1f} s), overhead "
        f"{out['overhead_share']:.2%}, validation {out['val_share_of_epoch']:.1%} of an epoch, "
        f"{out['epoch_train_img_per_s_median']:.0f} img/s, peak {out['peak_memory_mb'] or 0:.0f} MiB"
    )


# ------------------------------------------------------------------------------------------------ output
def markdown(res: dict) -> str:
    hw = res.get("hardware", {})
    lines = [
        "# hpsearch GPU benchmark\n",
        f"{hw.get('gpu', 'no GPU')} | CPU {hw.get('cpu')} ({hw.get('cpu_cores')} cores) "
        f"| torch {hw.get('torch')} "
        f"| CUDA {hw.get('cuda')} | cuDNN {hw.get('cudnn')} | data: {res.get('data')} | "
        f"{res.get('total_s', elapsed()):.0f} s\n",
    ]
    st = res.get("steps", {})
    if st.get("rows"):
        lines.append("\n## Training step img/s (bf16, channels_last, batches on the GPU)\n")
        rows = [
            [
                r["model"],
                r["batch"],
                "on" if r["compile"] else "off",
                r.get("img_per_s", r.get("skipped", r.get("error", ""))),
                r.get("first_step_s", ""),
                r.get("peak_mib", ""),
            ]
            for r in st["rows"]
        ]
        lines.append(md_table(["model", "batch", "compile", "img/s", "first step s", "peak MiB"], rows))
    if st.get("cbam_vs_unet"):
        lines.append("\n## CBAM U-Net / U-Net (target (c): >= 85%)\n")
        lines.append(
            md_table(
                ["attention", "batch", "compile", "ratio"],
                [[r["model"], r["batch"], r["compile"], f"{r['ratio']:.1%}"] for r in st["cbam_vs_unet"]],
            )
        )
    if st.get("compile_payoff"):
        lines.append("\n## torch.compile pay-off (target (d))\n")
        lines.append(
            md_table(
                [
                    "model",
                    "batch",
                    "compile s",
                    "gain ms/step",
                    "break-even steps",
                    "steps in 25 epochs",
                    "auto",
                ],
                [
                    [
                        r["model"],
                        r["batch"],
                        r["compile_s"],
                        r["step_gain_ms"],
                        r["break_even_steps"],
                        r["steps_in_25_epochs"],
                        r["auto_compiles_25_epochs"],
                    ]
                    for r in st["compile_payoff"]
                ],
            )
        )
    cb = res.get("cbam", {})
    if cb.get("module"):
        lines.append("\n## One CBAM at the first level (fwd+bwd)\n")
        lines.append(
            md_table(
                ["case", "ms"], [[r["case"], r.get("fwd_bwd_ms", r.get("error", ""))] for r in cb["module"]]
            )
        )
        if "img_per_s" in cb.get("regional", {}):
            lines.append(
                f"\nCBAM U-Net with only its attention compiled: {cb['regional']['img_per_s']:.0f} img/s\n"
            )
    pl = res.get("pipeline", {})
    if pl.get("rows"):
        lines.append("\n## Input pipeline vs preloaded batches (target (b): >= 90%)\n")
        lines.append(
            md_table(
                ["compile", "source", "img/s", "vs preloaded"],
                [
                    [
                        r["compile"],
                        r["source"],
                        r.get("img_per_s", r.get("error")),
                        r.get("vs_preloaded") or "",
                    ]
                    for r in pl["rows"]
                ],
            )
        )
    rp = res.get("report", {})
    if "report_style_img_per_s" in rp:
        lines.append(
            "\nReport-style end to end (PIL per item, fp32, batch 8): "
            f"{rp['report_style_img_per_s']:.0f} img/s. "
            f"CPU data pipeline per core vs PIL: cache+basic {rp['cpu_ratio_basic']:.1f}x, "
            f"cache {rp['cpu_ratio_none']:.1f}x.\n"
        )
    tr = res.get("trial", {})
    if "trial_wall_s" in tr:
        lines.append("\n## One real trial through the objective (targets (a), (e), (f))\n")
        lines.append(
            md_table(
                [
                    "epochs",
                    "trial wall s",
                    "fit s",
                    "overhead",
                    "val share",
                    "train img/s",
                    "peak MiB",
                    "Dice",
                ],
                [
                    [
                        tr["epochs"],
                        tr["trial_wall_s"],
                        tr["fit_wall_s"],
                        f"{tr['overhead_share']:.2%}",
                        f"{tr['val_share_of_epoch']:.1%}",
                        tr["epoch_train_img_per_s_median"],
                        tr["peak_memory_mb"],
                        tr["best_val_dice"],
                    ]
                ],
            )
        )
    errors = res.get("errors")
    if errors:
        lines.append("\n## Errors\n\n" + "\n".join(f"- {k}: {v}" for k, v in errors.items()) + "\n")
    return "".join(lines)


def write_all(res: dict, args: argparse.Namespace) -> None:
    public = {k: v for k, v in res.items() if not k.startswith("_")}
    public["total_s"] = elapsed()
    write_results(Path(args.out), "gpu", public, markdown(public))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="Kvasir-SEG folder with the original JPEGs (preferred)")
    ap.add_argument(
        "--cache", help="compact cache written by benchmarks/make_cache.py (default benchmarks/gpu-cache)"
    )
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu-results")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    ap.add_argument(
        "--batches", type=int, nargs="+", default=[16, 32, 8], help="batch sizes of the step table"
    )
    ap.add_argument(
        "--budget-s", type=float, default=330.0, help="skip optional work after this many seconds"
    )
    ap.add_argument("--trial-epochs", type=int, default=25)
    ap.add_argument("--trial-compile", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--no-compile", action="store_true", help="skip every torch.compile measurement")
    ap.add_argument("--only", nargs="+", choices=["steps", "cbam", "pipeline", "report", "trial"])
    ap.add_argument("--smoke", action="store_true", help="tiny model and images: check the script itself")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size = 64
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; use --device cpu --smoke to check the script")
    own_cache = None
    if "HPSEARCH_CACHE" not in os.environ:  # keep the decoded arrays out of the user's cache, and remove them
        own_cache = tempfile.mkdtemp(prefix="hpsearch-gpu-cache-")
        os.environ["HPSEARCH_CACHE"] = own_cache
    res: dict[str, Any] = {"hardware": hardware(), "command": " ".join(sys.argv), "errors": {}}
    data = load_data(args)
    res["data"] = data.source
    log(f"hardware: {res['hardware']}")
    sections = {
        "steps": bench_steps,
        "cbam": bench_cbam,
        "pipeline": bench_pipeline,
        "report": bench_report,
        "trial": bench_trial,
    }
    for name, fn in sections.items():
        if args.only and name not in args.only:
            continue
        try:
            fn(data, args, device, res)
        except Exception as exc:
            res["errors"][name] = f"{type(exc).__name__}: {exc}"
            log(f"{name}: FAILED {res['errors'][name]}")
            traceback.print_exc()
        write_all(res, args)
    res.pop("_trainers", None)
    res["total_s"] = elapsed()
    write_all(res, args)
    if own_cache:
        shutil.rmtree(own_cache, ignore_errors=True)
    print("\n" + markdown(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
