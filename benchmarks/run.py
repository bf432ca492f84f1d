"""CPU benchmarks of hpsearch: ratios measured side by side in one run.

    python benchmarks/run.py                   # everything (about 5 minutes on 2 cores)
    python benchmarks/run.py --quick           # a fast smoke pass (numbers are rough)
    python benchmarks/run.py --only data cbam  # some sections
    python benchmarks/run.py --out bench-out   # also write cpu.json and cpu.md there

Sections (each prints its ratios; the summary table comes last):

data      input pipeline img/s: the decoded uint8 cache through our DataLoader path (``runner.build_loaders``
          with presets 'none' and 'basic') against the report-style per-item PIL decode + resize of the
          original JPEGs. Real Kvasir-SEG (official split) when present, else synthetic JPEGs.
train     epoch img/s (train + validation) of a small U-Net at 256^2: ``fit`` on our loaders against a naive
          float32 loop on the report-style loader (per-item PIL decode, no cache, loss read back every step,
          validation one image at a time with the metric on the host).
cbam      training-step img/s of CBAM U-Net (fused and plain attention) relative to the plain U-Net.
overhead  real trials through the Optuna objective (SQLite storage, artifact store, gallery, curves,
          checkpoint) on synthetic 256^2 data: overhead_s / trial_wall_s as the objective records them.

Every ratio comes from rates measured in alternating rounds (A B A B ...) in this process, so a busy machine
slows both sides alike; no absolute threshold is asserted anywhere.
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
    find_kvasir,
    hardware,
    interleaved,
    loader_rate,
    md_table,
    median,
    report_loader,
    spread,
    synthetic_jpeg_dataset,
    write_results,
)

CPU = torch.device("cpu")
SECTIONS = ("data", "train", "cbam", "overhead")


def log(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------------ data
@dataclasses.dataclass
class Dataset:
    data_dir: Path
    real: bool
    prepared: Any  # hpsearch.training.runner.PreparedData
    cache_build_s: float


def prepare(args: argparse.Namespace, tmp: Path) -> Dataset:
    from hpsearch.training.config import DataConfig
    from hpsearch.training.runner import prepare_data

    real_dir = find_kvasir(args.data)
    if real_dir is not None:
        data_dir, real = real_dir, True
        cfg = DataConfig(path=str(data_dir), split_file="kvasir-official", val_fraction=0.1)
    else:
        n = 48 if args.quick else 240
        log(f"real Kvasir-SEG not found: making {n} synthetic 576x576 JPEG pairs")
        data_dir, real = synthetic_jpeg_dataset(tmp / "synthetic", n), False
        cfg = DataConfig(path=str(data_dir), val_fraction=0.1, test_fraction=0.1)
    cfg.cache_dir = str(tmp / "arrays")
    t0 = time.perf_counter()
    prepared = prepare_data(cfg, data_dir, progress=False)
    build_s = time.perf_counter() - t0
    log(
        f"data: {'Kvasir-SEG' if real else 'synthetic'} at {data_dir}: {len(prepared.train_images)} train, "
        f"{len(prepared.val_images)} val; verify + decode + resize into the cache took {build_s:.1f} s"
    )
    return Dataset(data_dir, real, prepared, build_s)


def subset(prepared: Any, n_train: int, n_val: int) -> Any:
    return dataclasses.replace(
        prepared,
        train_images=prepared.train_images[:n_train],
        train_masks=prepared.train_masks[:n_train],
        val_images=prepared.val_images[:n_val],
        val_masks=prepared.val_masks[:n_val],
        val_stems=prepared.val_stems[:n_val],
    )


def our_loader(prepared: Any, preset: str, batch: int, workers: int | str = "auto") -> Any:
    """The training loader exactly as ``runner.build_loaders`` builds it for a CPU run."""
    from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
    from hpsearch.training.runner import build_loaders

    cfg = RunConfig(
        data=DataConfig(augmentation=preset, num_workers=workers, augment_on="cpu"),
        train=TrainConfig(batch_size=batch, device="cpu"),
    )
    train, _ = build_loaders(cfg, prepared, CPU)
    return train


def bench_data(ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    log("\n== data pipeline: decoded cache + our DataLoader path vs report-style PIL decode ==")
    p = ds.prepared
    n_ours = len(p.train_images)
    n_pil = min(n_ours, 40 if args.quick else 160)
    stems = list(p.split.train)[:n_pil]
    batch = 8
    cores = os.cpu_count() or 1
    for stem in stems:  # page cache warm, as from the second epoch of a real run on
        for folder in ("images", "masks"):
            for f in (ds.data_dir / folder).glob(stem + ".*"):
                f.read_bytes()
    cpu = time.process_time
    base_name = "report-style: PIL decode+resize per item"
    runs = {
        base_name: lambda: loader_rate(report_loader(ds.data_dir, stems, batch), cpu),
        "ours: cache, preset none": lambda: loader_rate(our_loader(p, "none", batch), cpu),
        "ours: cache + basic": lambda: loader_rate(our_loader(p, "basic", batch), cpu),
    }
    rates = interleaved(runs, 1 if args.quick else 3, log=log, warmup=not args.quick)
    # Worker processes: their CPU time is not this process's, so this one is wall-clock on a shared machine.
    workers = interleaved(
        {
            f"ours: cache + basic, {cores} workers (wall)": lambda: loader_rate(
                our_loader(p, "basic", batch, cores)
            )
        },
        1 if args.quick else 2,
        log=log,
    )
    arr = np.asarray(p.train_images)
    t0 = cpu()
    for i in range(len(arr)):
        np.array(arr[i])
    raw = len(arr) / (cpu() - t0)
    base = median(rates[base_name])
    rows = []
    for name, vals in {**rates, **workers}.items():
        rows.append(
            {
                "pipeline": name,
                "img_per_s": median(vals),
                "spread": spread(vals),
                "ratio": median(vals) / base,
            }
        )
    rows.append(
        {"pipeline": "ours: read one image from the cache, no loader", "img_per_s": raw, "ratio": raw / base}
    )
    for r in rows:
        log(f"  {r['pipeline']:<50} {r['img_per_s']:>10,.0f} img/s  {r['ratio']:>7.2f}x")
    return {
        "dataset": "Kvasir-SEG official split" if ds.real else "synthetic 576x576 JPEG",
        "clock": "CPU time of this process (one thread), except the row marked wall",
        "items_ours": n_ours,
        "items_report_style": n_pil,
        "batch": batch,
        "cache_build_s": ds.cache_build_s,
        "baseline": base_name,
        "rows": rows,
    }


# ----------------------------------------------------------------------------------------------- train
def naive_epoch(model: torch.nn.Module, data_dir: Path, train: list[str], val: list[str], batch: int) -> dict:
    """The report-style loop: float32, PIL per item, loss.item() every step, per-image validation metric.

    Times are CPU seconds of this process (train part, validation part).
    """
    from common import ReportStyleDataset

    from hpsearch.training.losses import create_loss

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = create_loss("bce")
    t0 = time.process_time()
    model.train()
    losses = []
    for x, y in report_loader(data_dir, train, batch):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    t_train = time.process_time() - t0
    model.eval()
    dices = []
    val_ds = ReportStyleDataset(data_dir, val, flips=False)
    with torch.no_grad():
        for i in range(len(val_ds)):
            x, y = val_ds[i]
            pred = (torch.sigmoid(model(x[None]))[0] > 0.5).numpy()
            gt = y.numpy() > 0.5
            inter, total = float((pred & gt).sum()), float(pred.sum() + gt.sum())
            dices.append(1.0 if total == 0 else 2 * inter / total)
    t_val = time.process_time() - t0 - t_train
    return {"train_s": t_train, "val_s": t_val, "n_train": len(train), "dice": float(np.mean(dices))}


def our_epoch(model: torch.nn.Module, prepared: Any, batch: int) -> dict:
    """One epoch of ``fit`` on the CPU loaders of ``build_loaders``; CPU seconds split at validation."""
    import hpsearch.training.fit
    from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
    from hpsearch.training.fit import fit
    from hpsearch.training.runner import build_loaders

    cfg = RunConfig(
        data=DataConfig(augmentation="basic", augment_on="cpu"),
        train=TrainConfig(batch_size=batch, device="cpu", epochs=1, gallery_k=0, compile="off"),
    )
    train, val = build_loaders(cfg, prepared, CPU)
    val_cpu = [0.0]
    evaluate = hpsearch.training.fit.evaluate_loader

    def timed_evaluate(*a: Any, **kw: Any) -> Any:
        t = time.process_time()
        try:
            return evaluate(*a, **kw)
        finally:
            val_cpu[0] += time.process_time() - t

    hpsearch.training.fit.evaluate_loader = timed_evaluate
    try:
        t0 = time.process_time()
        res = fit(model, train, val, config=cfg.train, progress=False)
        total = time.process_time() - t0
    finally:
        hpsearch.training.fit.evaluate_loader = evaluate
    n = len(prepared.train_images) // batch * batch
    return {
        "train_s": total - val_cpu[0],
        "val_s": val_cpu[0],
        "n_train": n,
        "dice": res.history[0]["val_dice"],
    }


def bench_train(ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    from hpsearch.models import create_model

    log("\n== training epoch (train + validation) of a small U-Net at 256^2: fit vs naive loop ==")
    # 9 training images per validation image, as in the official split (792 / 88).
    n_tr, n_va, batch = (8, 4, 4) if args.quick else (72, 8, 8)
    p = subset(ds.prepared, n_tr, n_va)
    train_stems = [s for s in sorted(ds.prepared.split.train)][:n_tr]
    val_stems = list(p.val_stems)
    kwargs = {"base_width": 4, "depth": 3}
    torch.manual_seed(0)
    base = create_model("unet", **kwargs)
    details: dict[str, list[dict]] = {"ours": [], "naive": []}

    def run(kind: str) -> float:
        model = copy.deepcopy(base)
        t0 = time.process_time()
        if kind == "ours":
            r = our_epoch(model, p, batch)
        else:
            r = naive_epoch(model, ds.data_dir, train_stems, val_stems, batch)
        r["cpu_s"] = time.process_time() - t0
        details[kind].append(r)
        return r["n_train"] / r["cpu_s"]

    rates = interleaved(
        {"ours": lambda: run("ours"), "naive": lambda: run("naive")},
        1 if args.quick else 2,
        log=log,
        warmup=True,
    )
    for kind in details:  # drop the warm-up calls' records
        details[kind] = details[kind][1:]
    ours, naive = median(rates["ours"]), median(rates["naive"])

    def train_only(kind: str) -> float:
        return median([d["n_train"] / d["train_s"] for d in details[kind]])

    def val_share(kind: str) -> float:
        return median([d["val_s"] / (d["train_s"] + d["val_s"]) for d in details[kind]])

    out = {
        "model": f"unet {kwargs}",
        "batch": batch,
        "train_images": n_tr,
        "val_images": n_va,
        "clock": "CPU time of this process (one thread)",
        "epoch_img_per_s": {"ours": ours, "naive": naive},
        "epoch_ratio": ours / naive,
        "train_step_img_per_s": {"ours": train_only("ours"), "naive": train_only("naive")},
        "train_step_ratio": train_only("ours") / train_only("naive"),
        "val_share_of_epoch": {"ours": val_share("ours"), "naive": val_share("naive")},
        "val_img_per_s": {k: median([n_va / d["val_s"] for d in details[k]]) for k in ("ours", "naive")},
        "runs": details,
    }
    share = out["val_share_of_epoch"]
    log(
        f"  epoch img/s ours {ours:.2f} vs naive {naive:.2f}: {out['epoch_ratio']:.2f}x; train steps only "
        f"{out['train_step_ratio']:.2f}x; val share ours {share['ours']:.1%}, naive {share['naive']:.1%}"
    )
    return out


# ------------------------------------------------------------------------------------------------ cbam
_VIEWS = ("expand", "detach", "view", "slice", "select", "unsqueeze", "permute", "alias", "t.default")


def full_size_traffic(module: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Aten ops touching full-size tensors in one forward and one backward, and the bytes they move.

    Bytes are the sizes of the full-size inputs and outputs of each such op (views excluded): a
    device-independent tally of the memory traffic that eager execution costs.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    full = x.numel()

    class Tally(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops, self.bytes = 0, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            if not any(v in str(func) for v in _VIEWS):
                flat = tree_flatten((args, kwargs, out))[0]
                big = [t for t in flat if isinstance(t, torch.Tensor) and t.numel() >= full // 2]
                if big:
                    self.ops += 1
                    self.bytes += sum(t.numel() * t.element_size() for t in big)
            return out

    xx = x.detach().clone().requires_grad_(True)
    with Tally() as fwd:
        out = module(xx)
    grad = torch.randn_like(out)
    with Tally() as bwd:
        out.backward(grad)
    per = full * x.element_size()
    return {
        "forward_ops": fwd.ops,
        "forward_passes": fwd.bytes / per,
        "backward_ops": bwd.ops,
        "backward_passes": bwd.bytes / per,
    }


def bench_cbam(args: argparse.Namespace) -> dict[str, Any]:
    from hpsearch.models import create_model
    from hpsearch.models.attention import set_cbam_fused
    from hpsearch.training.losses import create_loss

    log("\n== CBAM U-Net training steps relative to U-Net (preloaded tensors, float32) ==")
    batch, size, steps = (2, 128, 1) if args.quick else (4, 256, 2)
    kwargs = {"base_width": 4, "depth": 3}
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=gen)
    y = (torch.rand(batch, 1, size, size, generator=gen) < 0.3).float()
    loss_fn = create_loss("bce")
    torch.manual_seed(0)
    models = {
        "unet": create_model("unet", **kwargs),
        "cbam_unet fused": create_model("cbam_unet", **kwargs),
    }
    models["cbam_unet plain"] = set_cbam_fused(copy.deepcopy(models["cbam_unet fused"]), False)
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-4) for k, m in models.items()}

    def rate(name: str) -> float:
        m, opt = models[name], opts[name]
        m.train()
        t0 = time.process_time()
        for _ in range(steps):
            loss = loss_fn(m(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return batch * steps / (time.process_time() - t0)

    for name in models:  # warm-up (allocator, oneDNN primitives)
        rate(name)
    rates = interleaved({k: (lambda k=k: rate(k)) for k in models}, 1 if args.quick else 3, log=log)
    unet = median(rates["unet"])
    from hpsearch.models.attention import CBAM, FusedCBAM

    torch.manual_seed(0)
    plain_m = CBAM(32)
    fused_m = FusedCBAM(32)
    fused_m.load_state_dict(plain_m.state_dict())
    xt = torch.randn(4, 32, 64, 64, generator=gen)
    traffic = {"plain": full_size_traffic(plain_m, xt), "fused": full_size_traffic(fused_m, xt)}
    for k, v in traffic.items():
        log(
            f"  one CBAM, {k}: forward {v['forward_ops']} full-size ops, {v['forward_passes']:.1f} tensor "
            f"passes; backward {v['backward_ops']} ops, {v['backward_passes']:.1f} passes"
        )
    out = {
        "traffic_per_module": traffic,
        "model_kwargs": kwargs,
        "batch": batch,
        "size": size,
        "img_per_s": {k: median(v) for k, v in rates.items()},
        "spread": {k: spread(v) for k, v in rates.items()},
        "cbam_fused_vs_unet": median(rates["cbam_unet fused"]) / unet,
        "cbam_plain_vs_unet": median(rates["cbam_unet plain"]) / unet,
        "fused_vs_plain": median(rates["cbam_unet fused"]) / median(rates["cbam_unet plain"]),
    }
    log(
        f"  CBAM/U-Net: fused {out['cbam_fused_vs_unet']:.1%}, plain {out['cbam_plain_vs_unet']:.1%}; "
        f"fused/plain {out['fused_vs_plain']:.2f}x"
    )
    return out


# -------------------------------------------------------------------------------------------- overhead
class _Timers:
    """Wraps the functions that make up a trial's overhead and sums their time per trial."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        def timed(*a: Any, **kw: Any) -> Any:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                self.totals[label] = self.totals.get(label, 0.0) + time.perf_counter() - t0
                cpu = label.replace("_s", "_cpu_s")
                self.totals[cpu] = self.totals.get(cpu, 0.0) + time.process_time() - c0

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, fn))

    def restore(self) -> None:
        for owner, attr, fn in reversed(self._undo):
            setattr(owner, attr, fn)


def bench_overhead(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import optuna
    import optuna.artifacts
    import yaml

    import hpsearch.training.fit
    import hpsearch.training.runner
    from hpsearch.data.synth import make_synthetic
    from hpsearch.search.objective import Objective, TrialContext, build_trial_config
    from hpsearch.search.service import SearchOptions, prepare_study
    from hpsearch.search.studies import artifact_store, run_trials, worker_study

    log("\n== study overhead: real trials through the objective (SQLite + artifact store) ==")
    n_trials, epochs, n_img = (1, 1, 16) if args.quick else (3, 12, 40)
    data_dir = make_synthetic(tmp / "overhead-data", n=n_img, size=256, seed=1)
    spec = {
        "name": "bench_overhead",
        "metric": "val_dice",
        "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
        "fixed": {
            "model": {"name": "unet", "kwargs": {"base_width": 4, "depth": 3}},
            "train": {"epochs": epochs, "batch_size": 8, "loss": "bce_dice", "gallery_k": 4, "device": "cpu"},
            "data": {"image_size": 256, "augmentation": "basic", "val_fraction": 0.2, "test_fraction": 0.1},
        },
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "budget": {"n_trials": n_trials},
    }
    spec_path = tmp / "bench_overhead.yaml"
    spec_path.write_text(yaml.safe_dump(spec))

    timers = _Timers()
    timers.wrap(hpsearch.training.runner, "predict_arrays", "gallery_predict_s")
    timers.wrap(hpsearch.training.fit, "save_checkpoint", "checkpoint_s")
    timers.wrap(optuna.artifacts, "upload_artifact", "artifact_upload_s")
    timers.wrap(hpsearch.training.runner, "build_manifest", "manifest_s")
    timers.wrap(hpsearch.training.runner, "fit", "fit_s")
    parts: dict[int, dict[str, float]] = {}

    def worker(variant: str) -> tuple[Any, Objective, Any]:
        opts = SearchOptions(
            study=str(spec_path),
            study_name=f"bench_overhead_{variant}",
            storage=f"sqlite:///{tmp}/overhead.db",
            data=str(data_dir),
            out=str(tmp / "runs"),
            artifacts=str(tmp / "artifacts"),
        )
        prep = prepare_study(opts)

        def on_event(event: dict) -> None:
            if event.get("kind") == "start":
                timers.totals["_cpu0"] = time.process_time()
            elif event.get("kind") == "end":
                timers.totals["trial_cpu_s"] = time.process_time() - timers.totals.pop("_cpu0")
                parts[id(prep), event["trial"]] = dict(timers.totals)
                timers.totals.clear()

        ctx = TrialContext(
            spec=prep.spec,
            data_dir=prep.data_dir,
            out_root=prep.out_root,
            artifact_store=artifact_store(prep.storage_url, opts.artifacts),
            on_event=on_event,
        )
        objective = Objective(ctx)
        # A worker decodes its data once and reuses it for every trial: keep that out of the trials.
        objective.data_for(build_trial_config(ctx, {"train.lr": 1e-3}, 0))
        return (
            worker_study(prep.study_name, prep.storage, prep.spec, seed_offset=0, budgeted=True),
            objective,
            prep,
        )

    variants = {"current": worker("current")}
    timers.wrap(hpsearch.training.runner, "save_gallery", "gallery_render_s")
    timers.wrap(hpsearch.training.runner, "plot_curves", "curves_s")
    try:
        for _ in range(n_trials):
            for study, objective, _ in variants.values():
                run_trials(study, objective, max_trials=1)
    finally:
        timers.restore()

    out: dict[str, Any] = {"epochs": epochs, "images": n_img, "clock": "wall (the objective's own timers)"}
    for variant, (_, _, prep) in variants.items():
        study = optuna.load_study(study_name=prep.study_name, storage=prep.storage)
        trials = []
        for t in study.get_trials():
            ua = t.user_attrs
            if "overhead_s" not in ua:
                trials.append({"number": t.number, "state": t.state.name, "error": ua.get("fail_reason")})
                continue
            row = {
                "number": t.number,
                "trial_wall_s": ua["trial_wall_s"],
                "fit_wall_s": ua["wall_time_s"],
                "overhead_s": ua["overhead_s"],
                "record_s": ua["record_s"],
                "overhead_share": ua["overhead_s"] / ua["trial_wall_s"],
                **parts.get((id(prep), t.number), {}),
            }
            # The same share in CPU seconds of this process: robust to other load on a shared machine.
            if "trial_cpu_s" in row and "fit_cpu_s" in row:
                row["overhead_share_cpu"] = 1.0 - row["fit_cpu_s"] / row["trial_cpu_s"]
            trials.append(row)
            log(
                f"  {variant} trial {t.number}: wall {row['trial_wall_s']:.1f} s, "
                f"overhead {row['overhead_s']:.3f} s ({row['overhead_share']:.2%}; CPU time "
                f"{row.get('overhead_share_cpu', float('nan')):.2%}); "
                + ", ".join(
                    f"{k} {v:.3f}"
                    for k, v in row.items()
                    if k.endswith("_s") and "wall" not in k and "cpu" not in k and k != "fit_s"
                )
            )
        shares = [t["overhead_share"] for t in trials if "overhead_share" in t]
        cpu_shares = [t["overhead_share_cpu"] for t in trials if "overhead_share_cpu" in t]
        out[variant] = {
            "median_overhead_share_cpu": median(cpu_shares),
            "trials": trials,
            "median_overhead_share": median(shares),
            "max_overhead_share": max(shares) if shares else float("nan"),
            # A worker's first trial also pays one-time imports (matplotlib fonts, optuna artifacts).
            "steady_overhead_share": median(shares[1:]) if len(shares) > 1 else float("nan"),
        }
    return out


# -------------------------------------------------------------------------------------------- summary
def summary(results: dict[str, Any]) -> str:
    rows: list[list[Any]] = []
    d = results.get("data")
    if d:
        by = {r["pipeline"]: r for r in d["rows"]}
        base = by[d["baseline"]]["img_per_s"]
        for name, r in by.items():
            if name == d["baseline"]:
                continue
            rows.append(
                [f"data: {name}", f"{r['img_per_s']:,.0f} img/s", f"{base:,.0f} img/s", f"{r['ratio']:.1f}x"]
            )
    t = results.get("train")
    if t:
        rows.append(
            [
                "train: fit epoch (train+val), small U-Net",
                f"{t['epoch_img_per_s']['ours']:.2f} img/s",
                f"{t['epoch_img_per_s']['naive']:.2f} img/s (naive)",
                f"{t['epoch_ratio']:.2f}x",
            ]
        )
        rows.append(
            [
                "train: validation share of the epoch",
                f"{t['val_share_of_epoch']['ours']:.1%}",
                f"{t['val_share_of_epoch']['naive']:.1%} (naive)",
                "",
            ]
        )
    c = results.get("cbam")
    if c:
        u = c["img_per_s"]["unet"]
        rows.append(
            [
                "cbam: fused CBAM U-Net / U-Net",
                f"{c['img_per_s']['cbam_unet fused']:.2f} img/s",
                f"{u:.2f} img/s",
                f"{c['cbam_fused_vs_unet']:.1%}",
            ]
        )
        rows.append(
            [
                "cbam: plain CBAM U-Net / U-Net",
                f"{c['img_per_s']['cbam_unet plain']:.2f} img/s",
                f"{u:.2f} img/s",
                f"{c['cbam_plain_vs_unet']:.1%}",
            ]
        )
        tf, tp = c["traffic_per_module"]["fused"], c["traffic_per_module"]["plain"]
        rows.append(
            [
                "cbam: one module's backward, full-size tensor passes",
                f"{tf['backward_passes']:.1f} ({tf['backward_ops']} ops)",
                f"{tp['backward_passes']:.1f} ({tp['backward_ops']} ops, plain)",
                f"{tf['backward_passes'] / tp['backward_passes']:.2f}x",
            ]
        )
    o = results.get("overhead")
    if o:
        for variant in ("current",):
            v = o[variant]
            rows.append(
                [
                    "overhead: overhead_s / trial_wall_s",
                    f"median {v['median_overhead_share']:.2%} wall, {v['median_overhead_share_cpu']:.2%} CPU",
                    f"max {v['max_overhead_share']:.2%} wall; later trials {v['steady_overhead_share']:.2%}",
                    f"{len(v['trials'])} trials",
                ]
            )
    hw = results["hardware"]
    head = (
        f"hpsearch CPU benchmarks: {hw['cpu']}, {hw['cpu_cores']} cores, torch {hw['torch']} "
        f"({hw['torch_threads']} thread(s)), load average at start {hw.get('load_average_1m', '?')}\n\n"
    )
    return head + md_table(["measurement", "ours", "baseline", "ratio"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="Kvasir-SEG folder (default: HPSEARCH_DATA or ../shared/data/kvasir-seg)")
    ap.add_argument("--out", help="folder for cpu.json and cpu.md")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--quick", action="store_true", help="tiny sizes and one round: a smoke test")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch/OpenCV threads (default 1: rates per core, robust to load)",
    )
    args = ap.parse_args(argv)
    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="hpsearch-bench-"))
    old_cache = os.environ.get("HPSEARCH_CACHE")
    os.environ["HPSEARCH_CACHE"] = str(tmp / "cache")  # never touch the user's cache
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "hardware": hardware(),
        "command": "python benchmarks/run.py " + " ".join(argv or sys.argv[1:]),
    }
    log(f"hardware: {results['hardware']}")
    try:
        ds = prepare(args, tmp) if {"data", "train"} & set(args.only) else None
        if "data" in args.only:
            results["data"] = bench_data(ds, args)
        if "train" in args.only:
            results["train"] = bench_train(ds, args)
        if "cbam" in args.only:
            results["cbam"] = bench_cbam(args)
        if "overhead" in args.only:
            results["overhead"] = bench_overhead(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old_cache is None:
            os.environ.pop("HPSEARCH_CACHE", None)
        else:
            os.environ["HPSEARCH_CACHE"] = old_cache
    results["total_s"] = time.perf_counter() - t0
    text = summary(results)
    if args.out:
        jp, mp = write_results(Path(args.out), "cpu", results, text)
        log(f"\nwrote {jp} and {mp}")
    log("\n" + text)
    log(f"({results['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
