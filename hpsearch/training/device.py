"""Device selection (cuda, then mps, then cpu) and per-device settings."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from pathlib import Path

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
    return f"CPU ({cpu_model()}, {torch.get_num_threads()} threads)"


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows.

    Results tables carry it because the same "x86_64, 2 cores" can be twice as fast on one host as on
    another: timings from two machines must say which is which.
    """
    import platform

    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@functools.cache
def mps_bf16_available() -> bool:
    """Whether this torch build can autocast to bfloat16 on Apple MPS (torch >= 2.5 on macOS >= 14)."""
    if not torch.backends.mps.is_available():
        return False
    try:
        from torch.amp.autocast_mode import is_autocast_available
    except ImportError:  # older torch: no MPS autocast either
        return False
    if not is_autocast_available("mps"):
        return False
    newer = getattr(torch.backends.mps, "is_macos_or_newer", None)
    return bool(newer(14, 0)) if newer is not None else False


def autocast_dtype(
    device_type: str, *, amp: bool, mps_amp: bool = False, mps_bf16: bool = False
) -> tuple[torch.dtype | None, str | None]:
    """The autocast dtype for a device (``None``: run float32) and a note for the user, if any.

    CUDA uses bf16 when ``amp``. MPS autocasts only when ``mps_amp`` is asked for, and then only to bf16
    (``mps_bf16``: supported by this torch/macOS): fp16 without a gradient scaler lets small gradients
    underflow to zero, so where bf16 is missing the run stays float32 and the note says so. CPUs run float32.
    """
    if device_type == "cuda" and amp:
        return torch.bfloat16, None
    if device_type == "mps" and mps_amp:
        if mps_bf16:
            return torch.bfloat16, None
        return None, (
            "mps_amp: this torch/macOS has no bf16 autocast on MPS and fp16 without loss scaling can "
            "underflow gradients; training in float32 (upgrade to torch >= 2.5 on macOS 14+ for bf16)"
        )
    return None, None


_noted: set[str] = set()


def autocast(device: torch.device, *, amp: bool, mps_amp: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``amp``; on MPS only with ``mps_amp`` and bf16 support; CPU runs float32."""
    mps_bf16 = device.type == "mps" and mps_amp and mps_bf16_available()
    dtype, note = autocast_dtype(device.type, amp=amp, mps_amp=mps_amp, mps_bf16=mps_bf16)
    if note and note not in _noted:  # once per process, not once per batch
        _noted.add(note)
        print(note, file=sys.stderr)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


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
