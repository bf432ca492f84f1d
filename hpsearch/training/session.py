"""Glue between a ``RunConfig`` and ``fit``: data preparation, loaders, model, outputs.

``train_from_config`` is what both ``hpsearch train`` and every study trial call, so a config exported
from a trial retrains through exactly the same code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from hpsearch.data.augment import build_transform
from hpsearch.data.cache import load_arrays
from hpsearch.data.dataset import SegmentationArrays
from hpsearch.data.device_augment import DeviceBatches, has_device_preset
from hpsearch.data.discover import Pair, dataset_fingerprint
from hpsearch.data.folder import resolve_data_dir
from hpsearch.data.splits import Split, split_for
from hpsearch.errors import ConfigError
from hpsearch.models import create_model
from hpsearch.training.checkpoint import ResumePoint, weights_bytes
from hpsearch.training.config import DataConfig, RunConfig, portable_payload
from hpsearch.training.device import autocast, describe_device, resolve_device
from hpsearch.training.loop import Callback, FitResult, fit
from hpsearch.training.manifest import build_manifest, seed_everything
from hpsearch.training.outputs import MIB, atomic_output, check_writable
from hpsearch.training.viz import plot_curves, save_gallery

RESUME_FILE = "resume.pt"  # in a run's out_dir while it is under way (removed when it finishes)


@dataclass
class PreparedData:
    """A verified dataset, its split and the decoded train/val arrays."""

    data_dir: Path
    pairs: list[Pair]
    split: Split
    fingerprint: str
    train_images: np.ndarray
    train_masks: np.ndarray
    val_images: np.ndarray
    val_masks: np.ndarray
    val_stems: list[str]


def prepare_data(
    cfg: DataConfig,
    data_dir: Path,
    *,
    progress: bool | None = None,
    known_split: tuple[list[Pair], Split] | None = None,
) -> PreparedData:
    """Verify the folder, split it, and load the decoded train/val arrays (the test part stays sealed).

    ``known_split``: the ``split_for`` result for this folder and ``cfg``'s split settings, if known.
    """
    pairs, split = known_split if known_split is not None else split_for(cfg, data_dir)
    by_stem = {p.stem: p for p in pairs}
    train_stems = list(split.train)
    if cfg.max_train_images:
        train_stems = train_stems[: cfg.max_train_images]
    val_stems = list(split.val)[: cfg.max_val_images] if cfg.max_val_images else list(split.val)
    # The cache's own bar hides itself when stderr is not a terminal; False silences it everywhere.
    show = progress is not False
    tr_img, tr_msk = load_arrays(
        by_stem, train_stems, size=cfg.image_size, cache_dir=cfg.cache_dir, progress=show
    )
    va_img, va_msk = load_arrays(
        by_stem, val_stems, size=cfg.image_size, cache_dir=cfg.cache_dir, progress=show
    )
    return PreparedData(
        data_dir=data_dir,
        pairs=pairs,
        split=split,
        fingerprint=dataset_fingerprint(pairs),
        train_images=tr_img,
        train_masks=tr_msk,
        val_images=va_img,
        val_masks=va_msk,
        val_stems=val_stems,
    )


def _num_workers(cfg: DataConfig, device: torch.device) -> int:
    if cfg.num_workers != "auto":
        return int(cfg.num_workers)
    if device.type == "cpu":
        # On a CPU-only host the loader workers would compete with the training threads.
        return 0
    return max(0, min(8, (os.cpu_count() or 2) - 1))


def _use_device_augment(cfg: DataConfig, device: torch.device) -> bool:
    if cfg.augment_on == "cpu":
        return False
    if cfg.augment_on == "device":
        if not has_device_preset(cfg.augmentation):
            raise ConfigError(
                f"augmentation preset '{cfg.augmentation}' has no device implementation; "
                "set data.augment_on to 'cpu' or 'auto'"
            )
        return True
    return device.type == "cuda" and has_device_preset(cfg.augmentation)


def _val_batch_size(train_batch_size: int) -> int:
    # Validation keeps no activations for backward, so it affords larger batches.
    return max(train_batch_size, 32)


def _device_loaders(cfg: RunConfig, data: PreparedData, device: torch.device) -> tuple[Any, Any]:
    """Whole uint8 arrays live on the device; augmentation and normalisation run there too."""
    bs = cfg.train.batch_size
    train = DeviceBatches(
        data.train_images,
        data.train_masks,
        batch_size=bs,
        device=device,
        preset=cfg.data.augmentation,
        shuffle=True,
        seed=cfg.train.seed,
    )
    val = DeviceBatches(
        data.val_images,
        data.val_masks,
        batch_size=_val_batch_size(bs),
        device=device,
        preset="none",
        shuffle=False,
        seed=0,
    )
    return train, val


class _HostTrainLoader(DataLoader):
    """The training DataLoader, resumable (``fit.ResumableLoader``): its shuffle generator and, when the
    augmentation runs in this process, the dataset's augmentation stream. Loader worker processes keep their
    own streams, which are not saved."""

    def state_dict(self) -> dict[str, Any]:
        in_process = self.num_workers == 0
        return {
            "generator": self.generator.get_state(),
            "augment": self.dataset.rng_state() if in_process else None,  # type: ignore[attr-defined]
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"])
        if state.get("augment") is not None:
            self.dataset.set_rng_state(state["augment"])  # type: ignore[attr-defined]


def _host_loaders(cfg: RunConfig, data: PreparedData, device: torch.device) -> tuple[DataLoader, DataLoader]:
    """torch DataLoaders over the host arrays; augmentation (albumentations) runs in the workers."""
    bs = cfg.train.batch_size
    workers = _num_workers(cfg.data, device)
    # On CUDA the loader ships uint8 images and fit normalises each batch on the GPU (a quarter of the bytes
    # through workers, pinned memory and PCIe); on a CPU the work would land on the same cores either way.
    cuda = device.type == "cuda"
    transform = build_transform(cfg.data.augmentation, cfg.data.image_size)
    train_ds = SegmentationArrays(data.train_images, data.train_masks, transform=transform, uint8_images=cuda)
    val_ds = SegmentationArrays(data.val_images, data.val_masks, transform=None, uint8_images=cuda)
    train = _HostTrainLoader(
        train_ds,
        batch_size=bs,
        shuffle=True,
        # BatchNorm cannot train on a last batch of one image; dropping a ragged tail costs < 1 batch/epoch.
        drop_last=len(train_ds) > bs,
        generator=torch.Generator().manual_seed(cfg.train.seed),
        num_workers=workers,
        pin_memory=cuda,
        persistent_workers=workers > 0,
        # Heavy presets have a long tail of slow samples (elastic warps); a deeper queue hides it.
        prefetch_factor=(4 if cuda else 2) if workers > 0 else None,
    )
    # Validation only copies (CPU: normalises) cached arrays: two workers keep up; more would idle.
    val_workers = min(workers, 2)
    val = DataLoader(
        val_ds,
        batch_size=_val_batch_size(bs),
        shuffle=False,
        num_workers=val_workers,
        pin_memory=cuda,
        persistent_workers=val_workers > 0,
    )
    return train, val


def build_loaders(cfg: RunConfig, data: PreparedData, device: torch.device) -> tuple[Any, Any]:
    """Training and validation batch sources for ``fit``: on the device when the preset has a device
    implementation and ``data.augment_on`` allows it, else host ``DataLoader``s."""
    if _use_device_augment(cfg.data, device):
        return _device_loaders(cfg, data, device)
    return _host_loaders(cfg, data, device)


@torch.no_grad()
def predict_arrays(
    model: torch.nn.Module, images: np.ndarray, device: torch.device, batch: int = 32, *, amp: bool = True
) -> np.ndarray:
    """Logits (N, H, W) float32 for uint8 images (N, H, W, 3), batched (bf16 autocast on CUDA if ``amp``)."""
    from hpsearch.data.device_augment import normalize_batch

    model.eval().to(device)
    # The same precision and layout as training's validation, so the gallery costs what a val pass does.
    channels_last = device.type == "cuda"
    out = []
    for i in range(0, len(images), batch):
        x = normalize_batch(torch.from_numpy(np.array(images[i : i + batch])).to(device))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp=amp):
            logits = model(x)
        out.append(logits.float()[:, 0].cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:3], np.float32)


def write_val_gallery(
    model: torch.nn.Module, data: PreparedData, device: torch.device, path: Path, k: int, *, amp: bool = True
) -> Path | None:
    """Render the k validation images with the lowest Dice (once per run, not per epoch)."""
    if k <= 0 or len(data.val_images) == 0:
        return None
    from hpsearch.training.metrics import dice_iou_per_image

    logits = predict_arrays(model, data.val_images, device, amp=amp)
    dice, _ = dice_iou_per_image(
        torch.from_numpy(logits)[:, None], torch.from_numpy(np.asarray(data.val_masks, np.float32))[:, None]
    )
    order = np.argsort(dice.numpy(), kind="stable")[:k]
    return save_gallery(
        [np.asarray(data.val_images[i]) for i in order],
        [np.asarray(data.val_masks[i]) for i in order],
        [logits[i] >= 0 for i in order],
        [float(dice[i]) for i in order],
        [data.val_stems[i] for i in order],
        path,
        title=f"{len(order)} worst validation cases",
    )


@dataclass
class TrainOutcome:
    """Everything ``train_from_config`` wrote and measured."""

    result: FitResult
    config: RunConfig
    out_dir: Path
    manifest: dict[str, Any]
    metrics_path: Path
    curves_path: Path
    gallery_path: Path | None


def _run_manifest(cfg: RunConfig, data: PreparedData, device: torch.device, model: torch.nn.Module) -> dict:
    """Seeds, versions, device and data identity recorded with the run."""
    return build_manifest(
        seed=cfg.train.seed,
        device=describe_device(device),
        split_hash=data.split.hash,
        data_fingerprint=data.fingerprint,
        split_seed=cfg.data.split_seed,
        n_train=len(data.train_images),
        n_val=len(data.val_images),
        n_params=sum(p.numel() for p in model.parameters()),
        scale=cfg.scale,
        image_size=cfg.data.image_size,
    )


def train_from_config(
    cfg: RunConfig,
    *,
    data_dir: str | Path | None = None,
    out_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
    description: str = "train",
    data: PreparedData | None = None,
    on_progress: Callable[[dict[str, float]], None] | None = None,
    resume: bool = False,
    resume_key: dict[str, Any] | None = None,
) -> TrainOutcome:
    """Train one model from a resolved config and write checkpoint, metrics.json, curves and gallery.

    ``data`` (already prepared) wins over ``data_dir``; without either, ``cfg.data.path`` is used. With
    ``resume`` (or a ``resume_key``), the run's state is kept in ``out_dir/resume.pt`` between epochs, and a
    later call into the same ``out_dir`` continues after its last saved epoch when its key matches:
    ``resume_key`` when given, else the resolved config, the data's fingerprint and the split.
    """
    out = check_writable(out_dir)  # at once: a typo in --out must not wait for the data to load
    if data is None:
        data = prepare_data(cfg.data, resolve_data_dir(data_dir, cfg.data.path), progress=progress)
    # Store the resolved data path so the exported config points at what was actually used.
    cfg = cfg.model_copy(deep=True)
    cfg.data.path = str(data.data_dir)
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    model = create_model(cfg.model.name, **cfg.model.kwargs)
    # Before any training: a folder that cannot take the checkpoint would lose the whole run at its end.
    check_writable(out, need_bytes=weights_bytes(model) + MIB)
    manifest = _run_manifest(cfg, data, device, model)
    config_json = cfg.model_dump(mode="json")
    if resume and resume_key is None:
        resume_key = {"config": config_json, "data": data.fingerprint, "split": data.split.hash}
    elif not resume and resume_key is None:
        (out / RESUME_FILE).unlink(missing_ok=True)  # starting over: old state must not be resumed later
    train_loader, val_loader = build_loaders(cfg, data, device)
    result = fit(
        model,
        train_loader,
        val_loader,
        config=cfg.train,
        callbacks=callbacks,
        checkpoint_path=out / "best.pt",
        progress=progress,
        description=description,
        on_progress=on_progress,
        resume=ResumePoint(out / RESUME_FILE, resume_key) if resume_key is not None else None,
        checkpoint_extra={
            "model_name": cfg.model.name,
            "model_kwargs": dict(cfg.model.kwargs),
            "config": config_json,
            "manifest": manifest,
        },
    )
    if result.best_state is not None:
        model.load_state_dict(result.best_state)
    gallery = write_val_gallery(
        model, data, device, out / "val_worst.png", cfg.train.gallery_k, amp=cfg.train.amp
    )
    metrics_path = out / "metrics.json"
    # Files named relative to the output folder, the data folder too: the record carries no machine's folders.
    record = {**result.summary(base=out), "config": portable_payload(cfg, out), "manifest": manifest}
    with atomic_output(metrics_path, what="metrics") as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    curves = plot_curves(
        result.history, out / "curves.png", title=f"{cfg.model.name}: {description}",
        monitor=cfg.train.monitor,
    )
    return TrainOutcome(result, cfg, out, manifest, metrics_path, curves, gallery)
