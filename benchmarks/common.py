"""What both benchmark scripts share: hardware, timing, data, the report-style baseline, real trials, output.

The "report-style" pipeline is the baseline every ratio is measured against: it decodes and resizes the
original JPEGs with PIL for every item, in the training process (``num_workers=0``), with no cache, and its
training loop runs in float32 and reads the loss back every step.

Every figure a script measures goes into one flat ``figures`` dict (name -> number) in its JSON; the
Markdown and the tests read that dict.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
KVASIR_DEFAULT = REPO.parent / "shared" / "data" / "kvasir-seg"
CACHE_MARKER = "hpsearch-benchmark-cache.json"  # written by make_cache.py: a resized copy, not the originals
MEAN = np.asarray((0.485, 0.456, 0.406), np.float32)
STD = np.asarray((0.229, 0.224, 0.225), np.float32)


# ----------------------------------------------------------------------------------------------- hardware
def hardware() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        names = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")]
        cpu = names[0] if names else cpu
    except (OSError, subprocess.SubprocessError):
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


# ------------------------------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    """Wait for queued device work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    runs: dict[str, Callable[[], float]], rounds: int, *, log: Callable[[str], None], warmup: bool = False
) -> dict[str, list[float]]:
    """Call each ``run`` once per round, in turn (A B C A B C ...); each returns one rate.

    Interleaving spreads slow phases of a shared machine over all variants instead of one, so ratios of the
    per-variant medians are fair even when absolute rates drift.
    """
    out: dict[str, list[float]] = {name: [] for name in runs}
    if warmup:  # one untimed call each: lazy imports, allocator growth, oneDNN primitive caches
        for fn in runs.values():
            fn()
    for r in range(rounds):
        for name, fn in runs.items():
            out[name].append(fn())
            log(f"  round {r + 1}/{rounds} {name}: {out[name][-1]:,.1f}")
    return out


def median(values: Iterable[float]) -> float:
    values = list(values)
    return float(statistics.median(values)) if values else float("nan")


def fit_rate(model: torch.nn.Module, train: Any, val: Any, *, batch: int, steps: int, compiled: bool,
             device: torch.device) -> dict[str, float | None]:
    """Training img/s of ``fit`` itself: epoch 1 warms up (compile, cuDNN autotuning), epoch 2 is timed.

    ``train`` is any batch source ``fit`` takes (a list of device tensors, DeviceBatches, a DataLoader);
    ``first_step_s`` is epoch 1 minus ``steps - 1`` steady steps: the first step's one-time cost.
    """
    from hpsearch.training.config import TrainConfig
    from hpsearch.training.loop import fit

    cfg = TrainConfig(epochs=2, batch_size=batch, lr=1e-4, loss="bce", device=str(device),
                      compile="on" if compiled else "off", max_steps_per_epoch=steps)
    res = fit(model, train, val, config=cfg, progress=False)
    first, timed = res.history
    rate = timed["train_img_per_s"]
    return {"img_per_s": rate, "first_step_s": first["train_time_s"] - (steps - 1) * batch / rate,
            "peak_mib": res.peak_memory_mb}


# ------------------------------------------------------------------------------------------------- data
def find_kvasir(explicit: str | None = None) -> Path | None:
    """The real Kvasir-SEG folder: ``--data``, ``HPSEARCH_DATA`` or ../shared/data/kvasir-seg."""
    for cand in (explicit, os.environ.get("HPSEARCH_DATA"), str(KVASIR_DEFAULT)):
        if cand and (Path(cand) / "images").is_dir() and (Path(cand) / "masks").is_dir():
            return Path(cand).resolve()
    return None


def synthetic_jpeg_dataset(out: Path, n: int, *, size: int = 576, seed: int = 0) -> Path:
    """Kvasir-like files when the real data is absent: JPEG images (quality 90), PNG masks."""
    import cv2

    from hpsearch.data.synth import make_synthetic

    png = make_synthetic(out / "png", n=n, size=size, seed=seed)
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for p in sorted((png / "images").iterdir()):
        cv2.imwrite(str(out / "images" / f"{p.stem}.jpg"), cv2.imread(str(p)), [cv2.IMWRITE_JPEG_QUALITY, 90])
        (png / "masks" / p.name).rename(out / "masks" / p.name)
    return out


def prepare(data_dir: Path, *, official: bool, size: int = 256) -> Any:
    """Verified pairs, split and decoded train/val arrays: the official Kvasir-SEG split or a seeded one."""
    from hpsearch.training.config import DataConfig
    from hpsearch.training.session import prepare_data

    cfg = DataConfig(path=str(data_dir), split_file="kvasir-official" if official else None, image_size=size)
    return prepare_data(cfg, data_dir, progress=False)


def our_loader(prepared: Any, preset: str, batch: int, workers: int | str = "auto") -> Any:
    """The training DataLoader exactly as ``build_loaders`` makes it for a CPU run (albumentations)."""
    from hpsearch.training.config import DataConfig, RunConfig, TrainConfig
    from hpsearch.training.session import build_loaders

    cfg = RunConfig(data=DataConfig(augmentation=preset, num_workers=workers, augment_on="cpu"),
                    train=TrainConfig(batch_size=batch, device="cpu"))
    return build_loaders(cfg, prepared, torch.device("cpu"))[0]


class ReportStyleDataset(Dataset):
    """Per item: PIL-decode the original image and mask, resize to ``size``, normalise; optional flips."""

    def __init__(self, data_dir: Path, stems: Sequence[str], size: int = 256, flips: bool = True) -> None:
        self.images = {p.stem: p for p in (Path(data_dir) / "images").iterdir()}
        self.masks = {p.stem: p for p in (Path(data_dir) / "masks").iterdir()}
        self.stems, self.size, self.flips = list(stems), size, flips

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        stem, s = self.stems[i], (self.size, self.size)
        image = np.asarray(Image.open(self.images[stem]).convert("RGB").resize(s, Image.BILINEAR), np.float32)
        mask = np.asarray(Image.open(self.masks[stem]).convert("L").resize(s, Image.NEAREST)) >= 128
        image = (image / 255.0 - MEAN) / STD
        for axis in (1, 0):
            if self.flips and torch.rand(()) < 0.5:
                image, mask = np.flip(image, axis), np.flip(mask, axis)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), np.float32))
        return x, torch.from_numpy(np.ascontiguousarray(mask, np.float32)[None])


def report_loader(data_dir: Path, stems: Sequence[str], batch: int, size: int = 256) -> DataLoader:
    dataset = ReportStyleDataset(data_dir, stems, size)
    return DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0)


def naive_train(model: torch.nn.Module, loader: Iterable, device: torch.device) -> int:
    """The report-style training loop: float32, Adam, BCE, the loss read back every step. Returns images."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.to(device).train()
    n = 0
    for x, y in loader:
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        n += x.shape[0]
    sync(device)
    return n


def loader_rate(loader: Iterable, clock: Callable[[], float] = time.process_time) -> float:
    """Images per second of ``clock`` for one pass. The default, CPU time of this process, is the rate of
    one dedicated core for a single-threaded pipeline, whatever else the machine is doing."""
    n, t0 = 0, clock()
    for x, _ in loader:
        n += x.shape[0]
    return n / (clock() - t0)


def pipeline_rates(prepared: Any, data_dir: Path, *, n_pil: int, rounds: int, log: Callable[[str], None],
                   batch: int = 8) -> dict[str, float]:
    """img/s per CPU second: report-style PIL decode vs the decoded cache through our DataLoader."""
    stems = list(prepared.split.train)[:n_pil]
    for f in (p for sub in ("images", "masks") for p in (data_dir / sub).iterdir() if p.stem in set(stems)):
        f.read_bytes()  # page cache warm, as from the second epoch of a real run on
    rates = interleaved(
        {
            "pil": lambda: loader_rate(report_loader(data_dir, stems, batch)),
            "cache_none": lambda: loader_rate(our_loader(prepared, "none", batch)),
            "cache_basic": lambda: loader_rate(our_loader(prepared, "basic", batch)),
        },
        rounds,
        log=log,
        warmup=rounds > 1,
    )
    return {k: median(v) for k, v in rates.items()}


# ---------------------------------------------------------------------------------------- real trials
# The pieces of a trial outside fit(), timed where the trial code looks them up. A name that has moved is
# reported under "parts_missing" instead of failing the benchmark.
PARTS = {
    "val_prediction": "hpsearch.training.session.predict_arrays",
    "gallery": "hpsearch.training.session.save_gallery",
    "curves": "hpsearch.training.session.plot_curves",
    "manifest": "hpsearch.training.session.build_manifest",
    "checkpoint": "hpsearch.training.loop.save_checkpoint",
    "artifact_upload": "optuna.artifacts.upload_artifact",
}


@contextlib.contextmanager
def timed_parts(parts: dict[str, str]) -> Iterator[dict[str, Any]]:
    """While open, each function named in ``parts`` is wrapped to add up its seconds and calls."""
    out: dict[str, Any] = {"seconds": {}, "calls": {}, "missing": []}
    undo = []

    def wrap(label: str, fn: Callable) -> Callable:
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                out["seconds"][label] = out["seconds"].get(label, 0.0) + time.perf_counter() - t0
                out["calls"][label] = out["calls"].get(label, 0) + 1

        return timed

    for label, dotted in parts.items():
        module, attr = dotted.rsplit(".", 1)
        try:
            owner = importlib.import_module(module)
            undo.append((owner, attr, getattr(owner, attr)))
            setattr(owner, attr, wrap(label, undo[-1][2]))
        except (ImportError, AttributeError):
            out["missing"].append(dotted)
    try:
        yield out
    finally:
        for owner, attr, fn in reversed(undo):
            setattr(owner, attr, fn)


def run_trials(spec: dict, data_dir: Path, work: Path, *, n_trials: int) -> dict[str, Any]:
    """``n_trials`` real trials of ``spec`` through ``hpsearch worker`` in this process (SQLite storage,
    artifact store, checkpoint, gallery, curves) and what the objective recorded for each.

    The decoded arrays are built before the first trial, as a worker that reuses its data for every trial
    finds them; one-time imports still land in the first trial.
    """
    import optuna
    import yaml

    from hpsearch.cli import app
    from hpsearch.search import keys
    from hpsearch.training.config import resolve_run_config
    from hpsearch.training.session import prepare_data

    spec = {**spec, "budget": {"n_trials": n_trials}}
    work.mkdir(parents=True, exist_ok=True)
    (work / "spec.yaml").write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{work}/study.db"
    prepare_data(resolve_run_config(spec["fixed"], data_path=data_dir).data, data_dir, progress=False)
    with timed_parts(PARTS) as parts:
        code = app(["worker", "--study", str(work / "spec.yaml"), "--storage", url, "--data", str(data_dir),
                    "--out", str(work / "runs"), "--artifacts", str(work / "artifacts"),
                    "--worker-index", "0", "--quiet"], standalone_mode=False)
    if code:
        raise RuntimeError(f"hpsearch worker exited with {code}")
    rows = []
    for t in optuna.load_study(study_name=spec["name"], storage=url).get_trials():
        ua, hist = t.user_attrs, t.user_attrs.get(keys.HISTORY) or []
        later = hist[1:] or hist  # epoch 1 also pays compilation and cuDNN autotuning
        row: dict[str, Any] = {"number": t.number, "state": t.state.name,
                               "error": ua.get(keys.FAIL_REASON) or ua.get(keys.FAIL_DETAIL)}
        if keys.OVERHEAD_S in ua:
            row.update(
                trial_wall_s=ua[keys.TRIAL_WALL_S], fit_wall_s=ua[keys.WALL_TIME_S],
                overhead_s=ua[keys.OVERHEAD_S], record_s=ua[keys.RECORD_S],
                overhead_share=ua[keys.OVERHEAD_S] / ua[keys.TRIAL_WALL_S],
                train_img_per_s=median(h["train_img_per_s"] for h in later),
                val_share_of_epoch=median(h["val_time_s"] / (h["train_time_s"] + h["val_time_s"])
                                          for h in later),
                peak_mib=ua.get(keys.PEAK_MEMORY_MB), best_val_dice=ua.get(keys.BEST_VAL_DICE),
                out_dir=ua.get(keys.OUT_DIR),
            )
        rows.append(row)
    return {"trials": rows, "parts_s_per_trial": {k: v / n_trials for k, v in parts["seconds"].items()},
            "calls_per_trial": {k: v / n_trials for k, v in parts["calls"].items()},
            "parts_missing": parts["missing"]}


# ------------------------------------------------------------------------------------------------ output
def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def markdown(title: str, res: dict[str, Any]) -> str:
    """Header with the hardware and command, then one table of figures per section, then errors."""
    hw = res["hardware"]
    lines = [f"# {title}\n\n", f"`{res['command']}`  \n",
             f"{hw.get('gpu', 'no GPU')}; CPU {hw['cpu']} ({hw['cpu_cores']} cores, "
             f"{hw['torch_threads']} torch threads, load {hw.get('load_average_1m')}); torch {hw['torch']}; "
             f"data: {res.get('data')}; {res.get('total_s', 0):.0f} s\n"]
    sections: dict[str, list[tuple[str, Any]]] = {}
    for name, value in res["figures"].items():
        section, rest = name.split(".", 1)
        sections.setdefault(section, []).append((rest, value))
    for section, rows in sections.items():
        lines.append(f"\n## {section}\n\n| figure | value |\n|---|---|\n")
        lines += [f"| {k} | {v:,.4g} |\n" if is_finite(v) else f"| {k} | {v} |\n" for k, v in rows]
    if res.get("errors"):
        lines.append("\n## errors\n\n" + "".join(f"- {k}: {v}\n" for k, v in res["errors"].items()))
    return "".join(lines)


def write_results(out_dir: Path, stem: str, res: dict[str, Any], title: str) -> tuple[Path, Path]:
    """``<stem>.json`` (everything) and ``<stem>.md`` (the figures) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jp, mp = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    jp.write_text(json.dumps(res, indent=2, default=str) + "\n")
    mp.write_text(markdown(title, res))
    return jp, mp
