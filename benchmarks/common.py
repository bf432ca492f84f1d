"""Shared pieces of the benchmarks: hardware description, timing, the report-style baseline, data, output.

The "report-style" pipeline is the baseline every ratio is measured against: it decodes and resizes the
original JPEGs with PIL for every item, in the training process (``num_workers=0``), with no cache. The
naive training loop built on it trains in float32, reads the loss back every step, and validates one image
at a time with the metric computed on the host.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
KVASIR_DEFAULT = REPO.parent / "shared" / "data" / "kvasir-seg"
MEAN = np.asarray((0.485, 0.456, 0.406), np.float32)
STD = np.asarray((0.229, 0.224, 0.225), np.float32)


# ----------------------------------------------------------------------------------------------- hardware
def cpu_model() -> str:
    """``lscpu``'s model name (or the platform's processor string where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


# ------------------------------------------------------------------------------------------------- timing
def sync(device: torch.device | str | None = None) -> None:
    """Wait for queued device work (no-op on CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    runs: dict[str, Callable[[], float]],
    rounds: int,
    *,
    log: Callable[[str], None] | None = None,
    warmup: bool = False,
) -> dict[str, list[float]]:
    """Call each ``run`` once per round, in turn (A B C A B C ...); each returns one rate (e.g. img/s).

    Interleaving spreads slow phases of a shared machine over all variants instead of one, so ratios taken
    from the per-variant medians are fair even when absolute rates drift.
    """
    out: dict[str, list[float]] = {name: [] for name in runs}
    if warmup:  # one untimed call each: lazy imports, allocator growth, oneDNN primitive caches
        for fn in runs.values():
            fn()
    for r in range(rounds):
        for name, fn in runs.items():
            rate = fn()
            out[name].append(rate)
            if log:
                log(f"  round {r + 1}/{rounds} {name}: {rate:,.1f}")
    return out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: how much a rate moved between rounds."""
    m = median(values)
    return float((max(values) - min(values)) / m) if values and m else float("nan")


# ---------------------------------------------------------------------------------- report-style baseline
class ReportStyleDataset(Dataset):
    """Per item: PIL-decode the original JPEG and mask, resize to ``size``, normalise; optional flips.

    That is the reproduced report's pipeline (no cache; every epoch decodes every file again).
    """

    def __init__(self, data_dir: Path, stems: Sequence[str], size: int = 256, flips: bool = True) -> None:
        self.images = {p.stem: p for p in (Path(data_dir) / "images").iterdir()}
        self.masks = {p.stem: p for p in (Path(data_dir) / "masks").iterdir()}
        self.stems = list(stems)
        self.size = size
        self.flips = flips

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        stem = self.stems[i]
        s = (self.size, self.size)
        image = np.asarray(Image.open(self.images[stem]).convert("RGB").resize(s, Image.BILINEAR), np.float32)
        mask = np.asarray(Image.open(self.masks[stem]).convert("L").resize(s, Image.NEAREST)) >= 128
        image = (image / 255.0 - MEAN) / STD
        if self.flips and torch.rand(()) < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if self.flips and torch.rand(()) < 0.5:
            image, mask = image[::-1], mask[::-1]
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), np.float32))
        y = torch.from_numpy(np.ascontiguousarray(mask, np.float32)[None])
        return x, y


def report_loader(data_dir: Path, stems: Sequence[str], batch: int, size: int = 256) -> DataLoader:
    return DataLoader(
        ReportStyleDataset(data_dir, stems, size), batch_size=batch, shuffle=True, num_workers=0
    )


def loader_rate(loader: Any, clock: Callable[[], float] = time.perf_counter) -> float:
    """Images per second of ``clock`` for one full pass over ``loader``.

    With ``clock=time.process_time`` the rate is per CPU-second of this process: for a single-threaded
    pipeline that is the rate of one dedicated core, whatever else the machine is doing.
    """
    n = 0
    t0 = clock()
    for x, _ in loader:
        n += x.shape[0]
    return n / (clock() - t0)


# -------------------------------------------------------------------------------------------------- data
def synthetic_jpeg_dataset(out: Path, n: int, seed: int = 0) -> Path:
    """Kvasir-like files when the real data is absent: 576x576 JPEG images (quality 90), PNG masks."""
    import cv2

    from hpsearch.data.synth import make_synthetic

    png = make_synthetic(out / "png", n=n, size=576, seed=seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for p in sorted((png / "images").iterdir()):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        cv2.imwrite(str(out / "images" / (p.stem + ".jpg")), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        (png / "masks" / p.name).rename(out / "masks" / p.name)
    return out


def find_kvasir(explicit: str | None = None) -> Path | None:
    """The real Kvasir-SEG folder: ``--data``, ``HPSEARCH_DATA`` or ../shared/data/kvasir-seg."""
    for cand in (explicit, os.environ.get("HPSEARCH_DATA"), str(KVASIR_DEFAULT)):
        if cand and (Path(cand) / "images").is_dir() and (Path(cand) / "masks").is_dir():
            return Path(cand).resolve()
    return None


# ------------------------------------------------------------------------------------------------ output
def write_results(out_dir: Path, stem: str, results: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    jp, mp = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    jp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    mp.write_text(markdown)
    return jp, mp


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
