"""Reference figures (numbers not measured by this project) and their citations, read from the one data file
``references.yaml`` beside this module. Nothing else in the package spells out such a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from hpsearch.errors import ConfigError

REFERENCES_FILE = Path(__file__).with_name("references.yaml")
CITATION_FIELDS = ("kind", "source", "split", "resolution", "averaging")
KINDS = {"claim": "claimed by its source, not checked here", "outside": "measured outside this project"}


@dataclass(frozen=True)
class Citation:
    """Where a figure comes from: the source, the split, the scoring resolution and the averaging."""

    kind: str
    source: str
    split: str
    resolution: str
    averaging: str


@dataclass(frozen=True)
class Figure:
    """One (Dice, IoU) pair with its label and citation."""

    key: str
    label: str
    dice: float
    iou: float
    citation: Citation


@dataclass(frozen=True)
class References:
    """The report's figures per column key, its baseline recipe, and the figures measured elsewhere."""

    report: Citation
    report_figures: dict[str, Figure]
    baseline_recipe: dict[str, Any]
    outside: dict[str, Figure]


def _citation(entry: Any, where: str) -> Citation:
    if not isinstance(entry, dict):
        raise ConfigError(f"{REFERENCES_FILE}: '{where}' must be a mapping, got {type(entry).__name__}")
    missing = [f for f in CITATION_FIELDS if not str(entry.get(f) or "").strip()]
    if missing:
        raise ConfigError(
            f"{REFERENCES_FILE}: '{where}' lacks {', '.join(missing)}; every reference figure needs "
            f"{', '.join(CITATION_FIELDS)}, or it must be removed"
        )
    if entry["kind"] not in KINDS:
        raise ConfigError(
            f"{REFERENCES_FILE}: '{where}.kind' is '{entry['kind']}'; expected one of: {', '.join(KINDS)}"
        )
    return Citation(*(" ".join(str(entry[f]).split()) for f in CITATION_FIELDS))


def _figure(key: str, entry: Any, citation: Citation, where: str) -> Figure:
    try:
        return Figure(key, str(entry["label"]), float(entry["dice"]), float(entry["iou"]), citation)
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"{REFERENCES_FILE}: '{where}' needs label, dice and iou (numbers); got {entry!r}"
        ) from None


def parse_references(data: dict[str, Any]) -> References:
    """Validate the parsed YAML: every figure carries a full citation."""
    report = _citation(data.get("report"), "report")
    given = data["report"].get("figures") or {}
    figures = {k: _figure(k, v, report, f"report.figures.{k}") for k, v in given.items()}
    outside = {
        k: _figure(k, v, _citation(v, f"outside.{k}"), f"outside.{k}")
        for k, v in (data.get("outside") or {}).items()
    }
    return References(report, figures, dict(data["report"].get("baseline_recipe") or {}), outside)


@lru_cache(maxsize=1)
def load_references() -> References:
    """The parsed and validated ``references.yaml`` shipped with the package."""
    try:
        data = yaml.safe_load(REFERENCES_FILE.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{REFERENCES_FILE}: cannot read the reference figures ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{REFERENCES_FILE}: expected a mapping at the top level")
    return parse_references(data)
