"""Named scales: one switch that shrinks every model and image uniformly, never the searched recipe.

``full`` is the report's setting. ``laptop`` makes the same experiments fit a CPU-only machine: the image side
is capped and every channel width is divided by the same factor, so a study, an export and the reproduced
table keep their meaning (the same learning rates, batch sizes, optimizers and epochs are compared), only
on smaller models. A config records the scale it was made at; scaling is applied once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpsearch.errors import ConfigError
from hpsearch.registry import Registry

FULL = "full"
# The image side of a config that names none (``DataConfig.image_size``); the ``laptop`` scale caps it.
DEFAULT_IMAGE_SIZE = 256


@dataclass(frozen=True)
class Scale:
    """How a scale changes a run config: an image-side cap and a divisor for every channel width."""

    name: str
    max_image_size: int | None
    width_divisor: int
    summary: str

    def apply(self, tree: dict[str, Any]) -> dict[str, Any]:
        """A scaled copy of a run-config mapping (sections ``data`` and ``model``), marked with the scale."""
        out = {**tree, "data": dict(tree.get("data") or {}), "model": dict(tree.get("model") or {})}
        if self.max_image_size is not None:
            size = out["data"].get("image_size", DEFAULT_IMAGE_SIZE)
            out["data"]["image_size"] = min(int(size), self.max_image_size)
        if self.width_divisor != 1:
            kwargs = dict(out["model"].get("kwargs") or {})
            width = int(kwargs.get("base_width", _DEFAULT_BASE_WIDTH))
            kwargs["base_width"] = max(1, width // self.width_divisor)
            out["model"]["kwargs"] = kwargs
        out["scale"] = self.name
        return out


# Every registered model builds from ``base_width`` (default 64, the report's U-Net).
_DEFAULT_BASE_WIDTH = 64

SCALES: Registry[Scale] = Registry("scale")
SCALES.add(FULL, Scale(FULL, None, 1, "the configured sizes (the report's: 256² images, U-Net width 64)"))
SCALES.add(
    "laptop",
    Scale(
        "laptop",
        128,
        4,
        "images at most 128², every width / 4 (the report's U-Net becomes width 16)",
    ),
)


def scale_names() -> list[str]:
    """Registered scale names, sorted."""
    return SCALES.names()


def apply_scale(tree: dict[str, Any], name: str | None, *, source: str = "config") -> dict[str, Any]:
    """Scale a run-config mapping to ``name`` once; ``None`` keeps the scale the config records.

    A config already at ``name`` is returned unchanged (an exported laptop config retrains as it is). Asking
    for a different scale than the one a config was made at is an error: widths cannot be un-divided.
    """
    current = tree.get("scale") or FULL
    if name is None or name == current:
        return tree
    scale = SCALES.get(name)
    if current != FULL:
        raise ConfigError(
            f"{source}: the config was made at scale '{current}' and cannot be rescaled to '{name}'; "
            f"start from the full-scale config, or drop --scale to train it as it is"
        )
    return scale.apply(tree)
