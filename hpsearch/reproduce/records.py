"""The records reproduce writes and reads back: one run (``<column>/seed<S>/run.json``, and each entry of a
column's ``runs``), one column's aggregate, and the whole table (``results.json``).

The keys on disk are the field names, in field order. A field in a class's ``_MAY_LACK`` is one that some
files do not carry (written by an older version, or only in one of a run's two files): absent reads as
None and None is not written, so a file read and written back is the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from hpsearch.errors import DataError
from hpsearch.reproduce.references import Citation

__all__ = ["Claim", "ColumnResult", "ReferenceInfo", "ReproduceResults", "RunRecord", "SplitInfo"]


def _fields_of(cls: type, data: Any, where: str) -> dict[str, Any]:
    """``data``'s values by field name, after checking that it has exactly ``cls``'s keys."""
    may_lack: frozenset[str] = getattr(cls, "_MAY_LACK", frozenset())
    if not isinstance(data, dict):
        raise DataError(
            f"{where}: got {type(data).__name__}; expected a JSON object written by `hpsearch reproduce` "
            "(run it again to rewrite the file)"
        )
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in data and n not in may_lack]
    unknown = [k for k in data if k not in names]
    if missing or unknown:
        problems = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has unknown keys {', '.join(map(str, unknown))}"] if unknown else []
        )
        raise DataError(
            f"{where}: {'; '.join(problems)}; expected the keys `hpsearch reproduce` writes "
            "(run it again to rewrite the file)"
        )
    return {n: data.get(n) for n in names}


def _plain(value: Any) -> Any:
    """``value`` as JSON data: records as objects, tuples as lists; dicts and lists copied."""
    if isinstance(value, _Record):
        return value.to_json()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Record:
    """``to_json``: the fields in order, less the ``_MAY_LACK`` ones that are None."""

    _MAY_LACK: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data, with the keys it has on disk."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self._MAY_LACK:
                continue
            out[f.name] = _plain(value)
        return out


@dataclass(frozen=True, kw_only=True)
class RunRecord(_Record):
    """One seed of one column: what it measured on the test set and how it trained.

    ``run.json`` carries ``identity`` and ``resolved_config``; a column's ``runs`` in ``results.json``
    carries ``kept`` and the files (``dir``, ``curves``, ``worst``) instead (see ``for_results``).
    """

    _MAY_LACK: ClassVar[frozenset[str]] = frozenset(
        {"identity", "resolved_config", "resumed_from_epoch", "kept", "dir", "curves", "worst"}
    )

    identity: dict[str, Any] | None = None  # what a kept run must match (config, data, split)
    seed: int
    dice: float  # mean per-image test Dice
    iou: float
    dice_sd_images: float | None  # spread over the test images
    iou_sd_images: float | None
    micro_dice: float
    n_test: int
    best_epoch: int
    epochs_run: int
    best_val_dice: float
    best_val_iou: float
    train_wall_s: float  # a resumed run's spans its sittings
    resumed_from_epoch: int | None = None  # older records do not say
    fit_wall_s: float
    eval_wall_s: float
    train_img_per_s: float
    device: str
    peak_memory_mb: float | None
    n_params: int | None
    n_train: int | None
    n_val: int | None
    resolved_config: dict[str, Any] | None = None  # data.path relative to the run's folder
    kept: bool | None = None  # finished in an earlier sitting
    dir: str | None = None  # the run's folder, relative to the results folder
    curves: str | None = None
    worst: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "run record") -> RunRecord:
        """A record from ``run.json`` or from a column's ``runs``; ``DataError`` if its keys are not ours."""
        return cls(**_fields_of(cls, data, where))

    def for_results(self, *, kept: bool, dir: str, curves: str, worst: str) -> RunRecord:
        """The entry of a column's ``runs``: no identity or config (the run's folder has them), its files."""
        return replace(
            self, identity=None, resolved_config=None, kept=kept, dir=dir, curves=curves, worst=worst
        )

    @property
    def wall_s(self) -> float:
        """Training and testing, in seconds."""
        return self.train_wall_s + self.eval_wall_s


@dataclass(frozen=True, kw_only=True)
class ColumnResult(_Record):
    """One column's aggregate over its seeds, what it trained, and its files (relative to the results)."""

    _MAY_LACK: ClassVar[frozenset[str]] = frozenset({"scale", "n_kept"})  # older results lack them

    label: str
    recipe: str
    config: str  # the column's config file ("FILE" or "FILE (note)")
    provenance: str
    model: str
    model_kwargs: dict[str, Any]
    scale: str | None = None  # None: older results, which were all at full scale
    image_size: int
    base_width: int | None
    depth: int | None
    epochs: int
    max_train_images: int | None
    n_train: int | None
    n_params: int | None
    n_seeds: int
    n_kept: int | None = None
    dice_mean: float
    dice_sd: float | None  # over seeds; None for one seed
    iou_mean: float
    iou_sd: float | None
    wall_time_s: float
    hardware: tuple[str, ...]
    worst: str
    resolved_config: str
    runs: tuple[RunRecord, ...]

    @classmethod
    def from_json(cls, data: Any, where: str = "column") -> ColumnResult:
        """A column of ``results.json``; ``DataError`` if its keys (or its runs') are not ours."""
        values = _fields_of(cls, data, where)
        values["hardware"] = tuple(values["hardware"])
        values["runs"] = tuple(
            RunRecord.from_json(r, f"{where}.runs[{i}]") for i, r in enumerate(values["runs"])
        )
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class SplitInfo(_Record):
    """The split every column used."""

    source: str
    hash: str
    counts: dict[str, int]  # train, val, test
    official: bool  # the configs' own split (not quick mode's random one)
    note: str | None  # why another split was used

    @classmethod
    def from_json(cls, data: Any, where: str = "split") -> SplitInfo:
        """The ``split`` entry of ``results.json``."""
        return cls(**_fields_of(cls, data, where))


@dataclass(frozen=True)
class Claim:
    """A figure the report claims for a column."""

    label: str
    dice: float
    iou: float


@dataclass(frozen=True, kw_only=True)
class ReferenceInfo(_Record):
    """The report's figures for the columns that ran, with their citation (copied from references.yaml)."""

    citation: Citation
    figures: dict[str, Claim]

    @classmethod
    def from_json(cls, data: Any, where: str = "reference") -> ReferenceInfo:
        """The ``reference`` entry of ``results.json``."""
        values = _fields_of(cls, data, where)
        figures = values["figures"]
        if not isinstance(figures, dict):
            raise DataError(f"{where}.figures: got {type(figures).__name__}; expected a JSON object")
        return cls(
            citation=Citation(**_fields_of(Citation, values["citation"], f"{where}.citation")),
            figures={k: Claim(**_fields_of(Claim, v, f"{where}.figures.{k}")) for k, v in figures.items()},
        )


@dataclass(frozen=True, kw_only=True)
class ReproduceResults(_Record):
    """The whole table: ``results.json``, from which ``results.md`` is rendered."""

    _MAY_LACK: ClassVar[frozenset[str]] = frozenset({"scale"})  # older results lack it

    kind: str  # "quick" or "full"
    scale: tuple[str, ...] | None = None
    created: str
    data_dir: str
    n_seeds: int
    hardware: str  # this sitting's; each run names its own device
    epochs_cap: int | None
    max_train_images: int | None
    split: SplitInfo
    metric: str
    selection: str
    columns: dict[str, ColumnResult]
    reference: ReferenceInfo
    warnings: tuple[str, ...]
    wall_time_s: float

    @classmethod
    def from_json(cls, data: Any, where: str = "results") -> ReproduceResults:
        """Results as ``results.json`` holds them; ``DataError`` if a key anywhere is not ours."""
        values = _fields_of(cls, data, where)
        if values["scale"] is not None:
            values["scale"] = tuple(values["scale"])
        values["warnings"] = tuple(values["warnings"])
        values["split"] = SplitInfo.from_json(values["split"], f"{where}.split")
        values["reference"] = ReferenceInfo.from_json(values["reference"], f"{where}.reference")
        columns = values["columns"]
        if not isinstance(columns, dict):
            raise DataError(f"{where}.columns: got {type(columns).__name__}; expected a JSON object")
        values["columns"] = {k: ColumnResult.from_json(c, f"{where}.columns.{k}") for k, c in columns.items()}
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> ReproduceResults:
        """Read a ``results.json``; one ``DataError`` line if it cannot be read or is not ours."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{path}: cannot read it as results ({exc}); expected the results.json `hpsearch reproduce` "
                "writes"
            ) from None
        return cls.from_json(data, str(path))
