"""Train/val/test splits: from a split file (folder of .txt lists or a saved JSON) or seeded at random."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hpsearch.data.discover import Pair
from hpsearch.data.io import IMAGE_EXTENSIONS
from hpsearch.errors import ConfigError, DataError

_MAX_NAMED = 5
BUILTIN_SPLITS = Path(__file__).resolve().parents[1] / "splits"


def _canonical_hash(train: Sequence[str], val: Sequence[str], test: Sequence[str]) -> str:
    payload = {"test": sorted(test), "train": sorted(train), "val": sorted(val)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _name_some(items: Iterable[str]) -> str:
    items = sorted(items)
    shown = ", ".join(items[:_MAX_NAMED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_NAMED else "")


@dataclass(frozen=True)
class Split:
    """Three disjoint, sorted tuples of stems plus where they came from. ``hash`` identifies the partition."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    source: str = "random"
    seed: int = 0

    def __post_init__(self) -> None:
        # Sorted tuples make the split immutable and its hash independent of construction order.
        for name in ("train", "val", "test"):
            object.__setattr__(self, name, tuple(sorted(getattr(self, name))))
        parts = {"train": set(self.train), "val": set(self.val), "test": set(self.test)}
        for name, stems in parts.items():
            if len(stems) != len(getattr(self, name)):
                raise DataError(
                    f"split ({self.source}): {name} lists a stem twice; each stem must appear once"
                )
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = parts[a] & parts[b]
            if both:
                raise DataError(
                    f"split ({self.source}): {len(both)} stem(s) are in both {a} and {b}: "
                    f"{_name_some(both)}; the parts must be disjoint"
                )

    @property
    def hash(self) -> str:
        """Full sha256 (hex) of the canonical JSON of the sorted train/val/test lists."""
        return _canonical_hash(self.train, self.val, self.test)

    @property
    def short_hash(self) -> str:
        """First 16 hex characters of ``hash``, for display."""
        return self.hash[:16]

    def counts(self) -> dict[str, int]:
        """Number of stems per part."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _seeded_order(stems: Iterable[str], seed: int) -> list[str]:
    """A seed-dependent order that is identical on every platform and Python/NumPy version.

    Ranking by sha256(seed, stem) also keeps each stem's placement independent of the other stems.
    """
    return sorted(stems, key=lambda s: (hashlib.sha256(f"{seed}\0{s}".encode()).hexdigest(), s))


def _n_from_fraction(fraction: float, n: int) -> int:
    return 0 if fraction <= 0 else max(1, round(fraction * n))


def _stems_of(pairs: Iterable[Pair | str]) -> list[str]:
    return [p.stem if isinstance(p, Pair) else str(p) for p in pairs]


def _read_list(path: Path) -> list[str]:
    """Stems from a text file: one per line, blank lines and # comments ignored, image extensions dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: cannot read split list ({exc}); expected UTF-8 text, one stem per line"
        ) from None
    stems = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name = Path(line).name
        stems.append(Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name)
    duplicated = sorted(s for s, n in Counter(stems).items() if n > 1)
    if duplicated:
        raise DataError(f"{path}: {len(duplicated)} stem(s) listed twice: {_name_some(duplicated)}")
    return stems


def _split_from_folder(folder: Path) -> tuple[list[str], list[str] | None, list[str]]:
    """(train, val or None, held-out test) lists of a split folder."""
    train_txt, val_txt, test_txt = folder / "train.txt", folder / "val.txt", folder / "test.txt"
    if not train_txt.is_file() or not (val_txt.is_file() or test_txt.is_file()):
        raise DataError(
            f"split folder {folder} needs train.txt and test.txt (or val.txt as the held-out list); "
            f"found: {', '.join(sorted(p.name for p in folder.iterdir())) or 'nothing'}"
        )
    train = _read_list(train_txt)
    if test_txt.is_file():
        # With all three lists present, val.txt is a real validation list and is kept as given.
        val = _read_list(val_txt) if val_txt.is_file() else None
        return train, val, _read_list(test_txt)
    # The official Kvasir-SEG split names its held-out part val.txt; it is used as the sealed test set.
    return train, None, _read_list(val_txt)


def _check_covers(split_file: Path, listed: set[str], stems: set[str]) -> None:
    # A shipped split is named as a checkout holds it: the message can end up in a written record.
    split_file = shown_split_file(split_file)
    missing = listed - stems
    if missing:
        raise DataError(
            f"split file {split_file} lists {len(missing)} stem(s) that are not in the data: "
            f"{_name_some(missing)}; use the split made for this dataset"
        )
    unlisted = stems - listed
    if unlisted:
        raise DataError(
            f"split file {split_file} does not list {len(unlisted)} stem(s) of the data: "
            f"{_name_some(unlisted)}; every pair must be in train, val or test"
        )


def make_split(
    pairs: Iterable[Pair | str],
    *,
    split_file: str | Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Split:
    """Split the stems of ``pairs`` into train/val/test.

    With ``split_file`` (a folder with train.txt and test.txt/val.txt, or a JSON from ``save_split``) the
    held-out list becomes ``test`` and ``val`` is a seeded carve of ``val_fraction`` of train (at least one
    stem). A saved JSON is used as it is. Without a split file, ``test_fraction`` of all stems is held out and
    ``val_fraction`` of the rest becomes ``val``. Every part is sorted; the same seed gives the same split.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} is {value}; expected a fraction in [0, 1), e.g. 0.1")
    stems = _stems_of(pairs)
    stem_set = set(stems)
    if len(stem_set) != len(stems):
        raise DataError("make_split got the same stem twice; pass each pair once")

    if split_file is not None:
        split_file = Path(split_file).expanduser()
        if not split_file.exists():
            raise DataError(
                f"split file {split_file} does not exist; pass a folder with train.txt + test.txt/val.txt "
                "or a JSON written by `hpsearch data split`"
            )
        if split_file.is_file():
            split = load_split(split_file)
            _check_covers(split_file, set(split.train) | set(split.val) | set(split.test), stem_set)
            return split
        train, val, test = _split_from_folder(split_file)
        overlap = set(train) & set(test)
        if overlap:
            raise DataError(
                f"split folder {split_file}: {len(overlap)} stem(s) are both in train and in the held-out "
                f"list: {_name_some(overlap)}"
            )
        _check_covers(split_file, set(train) | set(val or ()) | set(test), stem_set)
        if val is None:
            n_val = _n_from_fraction(val_fraction, len(train))
            if n_val >= len(train):
                raise ConfigError(
                    f"val_fraction {val_fraction} leaves no training stems out of {len(train)}; lower it"
                )
            val = _seeded_order(train, seed)[:n_val]
            train = sorted(set(train) - set(val))
        return Split(tuple(train), tuple(val), tuple(test), source=str(split_file), seed=seed)

    n_test = _n_from_fraction(test_fraction, len(stems))
    n_val = _n_from_fraction(val_fraction, len(stems) - n_test)
    if n_test + n_val >= len(stems):
        raise DataError(
            f"cannot split {len(stems)} pair(s) into train/val/test with val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}: no training pair would be left; add data or lower the fractions"
        )
    order = _seeded_order(stems, seed)
    test = order[:n_test]
    val = order[n_test : n_test + n_val]
    train = order[n_test + n_val :]
    source = f"random(val_fraction={val_fraction}, test_fraction={test_fraction})"
    split = Split(tuple(train), tuple(val), tuple(test), source=source, seed=seed)
    assert not (set(split.train) & set(split.val) or set(split.train) & set(split.test))
    return split


def shown_split_file(path: Path) -> Path:
    """A split file shipped with hpsearch relative to the repository (``hpsearch/splits/...``), else as is."""
    from hpsearch.data.io import shipped_path

    return shipped_path(path) or Path(path)


def shown_source(source: str, base: Path) -> str:
    """A split's source as a record in ``base`` names it: a split file by ``portable_path`` (a shipped one
    relative to the repository), a word such as "random" as it is."""
    if not Path(source).is_absolute():
        return source
    from hpsearch.data.io import portable_path

    return portable_path(source, base, shipped=True)


def save_split(split: Split, path: str | Path) -> Path:
    """Write ``split`` as JSON {train, val, test, source, seed, hash} (atomically) and return the path."""
    path = Path(path).expanduser()
    payload = {
        "train": list(split.train),
        "val": list(split.val),
        "test": list(split.test),
        "source": shown_source(split.source, path.parent),
        "seed": split.seed,
        "hash": split.hash,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_split(path: str | Path) -> Split:
    """Read a JSON written by ``save_split``; a hash that no longer matches the lists raises ``DataError``."""
    path = Path(path).expanduser()
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"split file {path} does not exist; write one with `hpsearch data split`") from None
    except (OSError, ValueError) as exc:
        raise DataError(
            f"split file {path} is not valid JSON ({exc}); regenerate it with `hpsearch data split`"
        ) from None
    keys = ("train", "val", "test", "hash")
    if not isinstance(payload, dict) or any(k not in payload for k in keys):
        raise DataError(
            f"split file {path} lacks keys {', '.join(keys)}; regenerate it with `hpsearch data split`"
        )
    for key in ("train", "val", "test"):
        if not isinstance(payload[key], list) or not all(isinstance(s, str) for s in payload[key]):
            raise DataError(f"split file {path}: '{key}' must be a list of stem strings")
    split = Split(
        tuple(payload["train"]),
        tuple(payload["val"]),
        tuple(payload["test"]),
        source=str(payload.get("source", path)),
        seed=int(payload.get("seed", 0)),
    )
    if split.hash != payload["hash"]:
        raise DataError(
            f"split file {path} was edited: its lists hash to {split.short_hash} but it records "
            f"{str(payload['hash'])[:16]}; regenerate it with `hpsearch data split` instead of editing it"
        )
    return split


class SplitSettings(Protocol):
    """The fields of a data config that decide a split (``DataConfig`` has them)."""

    split_file: str | None
    val_fraction: float
    test_fraction: float
    split_seed: int


def resolve_split_file(value: str | None, data_dir: Path) -> Path | None:
    """A shipped split name (``kvasir-official``), a path, or a path relative to the data folder."""
    if not value:
        return None
    if (BUILTIN_SPLITS / value).is_dir():
        return BUILTIN_SPLITS / value
    p = Path(value).expanduser()
    if p.exists() or p.is_absolute():
        return p
    if (data_dir / p).exists():
        return data_dir / p
    shipped = ", ".join(sorted(d.name for d in BUILTIN_SPLITS.iterdir() if d.is_dir()))
    raise ConfigError(
        f"split file '{value}' not found (relative to the working folder or to {data_dir}); "
        f"give a path, or one of the shipped splits: {shipped}"
    )


def split_for(
    settings: SplitSettings, data_dir: str | Path, *, pairs: Sequence[Pair] | None = None
) -> tuple[list[Pair], Split]:
    """The one way to split a dataset folder from a data config: verified pairs and their split.

    ``pairs`` skips the (fingerprint-cached) verification when the caller already has them.
    """
    from hpsearch.data.check import verify_dataset

    data_dir = Path(data_dir)
    allow_empty = bool(getattr(settings, "allow_empty_masks", False))
    pairs = list(pairs) if pairs is not None else verify_dataset(data_dir, allow_empty_masks=allow_empty)
    split = make_split(
        pairs,
        split_file=resolve_split_file(settings.split_file, data_dir),
        val_fraction=settings.val_fraction,
        test_fraction=settings.test_fraction,
        seed=settings.split_seed,
    )
    return pairs, split
