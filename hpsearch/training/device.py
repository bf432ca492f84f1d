"""Device selection (cuda, then mps, then cpu) and per-device settings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from hpsearch.errors import ConfigError

_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """Return the requested device; ``auto`` prefers CUDA, then Apple MPS, then CPU."""
    base = name.split(":", 1)[0]
    if base not in _CHOICES:
        raise ConfigError(f"unknown device '{name}'; expected one of: {', '.join(_CHOICES)} (or cuda:N)")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' was requested but CUDA is not available here; use --device auto")
    if base == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{name}' was requested but MPS is not available here; use --device auto")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """Human-readable device name for manifests and reports."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def autocast(device: torch.device, *, amp: bool, mps_amp: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``amp``; MPS stays float32 unless ``mps_amp``; CPU runs float32."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "mps" and mps_amp:
        return torch.autocast("mps", dtype=torch.float16)
    return contextlib.nullcontext()


def reset_peak_memory(device: torch.device) -> None:
    """Start a fresh peak-memory window."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak allocated accelerator memory since the last reset, in MiB (None on CPU)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps":
        return torch.mps.current_allocated_memory() / 2**20
    return None


def release_memory(device: torch.device) -> None:
    """Give cached accelerator memory back (after an OOM or at the end of a trial)."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """Enable cuDNN autotuning for fixed-size inputs while training on CUDA."""
    old = torch.backends.cudnn.benchmark
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old
