"""Dataset checks: every file decodes, masks match their images, plus a report of sizes and oddities."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hpsearch.data.discover import Pair, dataset_fingerprint, scan_pairs
from hpsearch.data.io import decode_image, decode_mask, default_cache_root, progress_bar, read_bytes
from hpsearch.errors import DataError

# Bump when the checks get stricter so that old "passed" records are not trusted any more.
CHECK_VERSION = 2  # 2: a dataset whose masks are all empty is refused
_THREADS = 2  # OpenCV decoding and hashlib release the GIL, so threads scale on the 2-core target
_MAX_NAMED = 5


@dataclass
class _PairResult:
    size: tuple[int, int] | None = None  # (W, H) of the image when it decoded
    errors: list[str] = field(default_factory=list)
    empty_mask: bool = False
    foreground: float | None = None
    image_sha256: str = ""


@dataclass
class CheckReport:
    """What ``check_dataset`` found. ``ok`` is False when any error was found; warnings never fail."""

    data_dir: Path
    n_pairs: int
    min_size: tuple[int, int] | None = None  # smallest image by pixel count, (W, H)
    max_size: tuple[int, int] | None = None  # largest image by pixel count, (W, H)
    width_range: tuple[int, int] | None = None
    height_range: tuple[int, int] | None = None
    n_distinct_sizes: int = 0
    foreground_range: tuple[float, float, float] | None = None  # min, median, max fraction of mask pixels
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """True when no error was found (warnings do not count)."""
        return not self.errors

    def summary(self) -> str:
        """Human-readable multi-line report; every problem is one line starting with error:/warning:."""
        lines = [f"data folder: {self.data_dir}", f"pairs: {self.n_pairs}"]
        if self.min_size and self.max_size and self.width_range and self.height_range:
            (w0, h0), (w1, h1) = self.min_size, self.max_size
            lines.append(
                f"image sizes: {w0}x{h0} .. {w1}x{h1} ({self.n_distinct_sizes} distinct; "
                f"widths {self.width_range[0]}..{self.width_range[1]}, "
                f"heights {self.height_range[0]}..{self.height_range[1]})"
            )
        if self.foreground_range:
            lo, mid, hi = (100 * v for v in self.foreground_range)
            lines.append(f"mask foreground: min {lo:.2f}%, median {mid:.1f}%, max {hi:.1f}%")
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"error: {e}" for e in self.errors]
        if self.ok:
            extra = f" with {len(self.warnings)} warning(s)" if self.warnings else ""
            lines.append(f"OK: {self.n_pairs} pairs passed{extra}")
        else:
            lines.append(f"FAILED: {len(self.errors)} error(s)")
        return "\n".join(lines)


def _check_pair(pair: Pair) -> _PairResult:
    result = _PairResult()
    image = mask = None
    try:
        data = read_bytes(pair.image)
        result.image_sha256 = hashlib.sha256(data).hexdigest()
        image = decode_image(data, pair.image)
    except DataError as exc:
        result.errors.append(str(exc))
    try:
        mask = decode_mask(read_bytes(pair.mask), pair.mask)
    except DataError as exc:
        result.errors.append(str(exc))
    if image is not None:
        result.size = (image.shape[1], image.shape[0])
    if mask is not None:
        fg = int(np.count_nonzero(mask))
        result.foreground = fg / mask.size
        result.empty_mask = fg == 0
    if image is not None and mask is not None and image.shape[:2] != mask.shape:
        result.errors.append(
            f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {pair.image.name} is "
            f"{image.shape[1]}x{image.shape[0]}; a mask must have its image's size"
        )
    return result


def _name_some(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_NAMED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_NAMED else "")


def check_dataset(
    data_dir: str | Path, *, progress: bool = True, allow_empty_masks: bool = False
) -> CheckReport:
    """Decode every image and mask in ``data_dir`` and report sizes and problems.

    Errors (fail): unmatched or duplicate stems, broken symlinks, unreadable/corrupt/truncated files, mask
    size != image size, every mask empty (unless ``allow_empty_masks``: nothing to learn, Dice stays 0).
    Warnings (reported only): some empty masks, byte-identical images. Raises ``DataError`` only when the
    folder layout itself is unusable (missing folder, no images).
    """
    data_dir = Path(data_dir).expanduser()
    pairs, problems = scan_pairs(data_dir)
    report = CheckReport(data_dir=data_dir, n_pairs=len(pairs), errors=list(problems), pairs=pairs)

    results: list[_PairResult] = []
    with progress_bar(progress) as bar, ThreadPoolExecutor(_THREADS) as pool:
        task = bar.add_task("checking pairs", total=len(pairs))
        for result in pool.map(_check_pair, pairs):
            results.append(result)
            bar.advance(task)

    sizes = [r.size for r in results if r.size is not None]
    if sizes:
        report.min_size = min(sizes, key=lambda s: (s[0] * s[1], s))
        report.max_size = max(sizes, key=lambda s: (s[0] * s[1], s))
        report.width_range = (min(s[0] for s in sizes), max(s[0] for s in sizes))
        report.height_range = (min(s[1] for s in sizes), max(s[1] for s in sizes))
        report.n_distinct_sizes = len(set(sizes))
    fgs = [r.foreground for r in results if r.foreground is not None]
    if fgs:
        report.foreground_range = (min(fgs), float(np.median(fgs)), max(fgs))
    for result in results:
        report.errors.extend(result.errors)

    empty = [p.mask.name for p, r in zip(pairs, results, strict=True) if r.empty_mask]
    if empty and len(empty) == len(pairs) and not allow_empty_masks:
        report.errors.append(all_empty_message(data_dir, len(pairs)))
    elif empty:
        report.warnings.append(
            f"{len(empty)} empty mask(s) (no pixel >= 128): {_name_some(empty)}; "
            "fine only if those images really show no polyp"
        )
    by_hash: dict[str, list[str]] = {}
    for pair, result in zip(pairs, results, strict=True):
        if result.image_sha256:
            by_hash.setdefault(result.image_sha256, []).append(pair.image.name)
    groups = [" = ".join(names) for names in by_hash.values() if len(names) > 1]
    if groups:
        report.warnings.append(
            f"{len(groups)} group(s) of byte-identical images: {_name_some(groups)}; "
            "duplicates can leak between train and test"
        )
    return report


def all_empty_message(data_dir: Path, n: int) -> str:
    """The refusal of a dataset whose masks are all empty (likely cause: masks saved as 0/1, not 0/255)."""
    return (
        f"{Path(data_dir) / 'masks'}: all {n} masks are empty (no pixel >= 128), so there is nothing to "
        "segment and Dice stays 0; masks must be white (>= 128) on black, e.g. 0/255 rather than 0/1; if "
        "empty masks are intended, pass --allow-empty-masks (data.allow_empty_masks: true)"
    )


def _record_path(fingerprint: str, cache_root: Path | None) -> Path:
    root = cache_root if cache_root is not None else default_cache_root()
    return root / "checks" / f"v{CHECK_VERSION}-{fingerprint}.json"


def verify_dataset(
    data_dir: str | Path,
    *,
    progress: bool = True,
    cache_root: str | Path | None = None,
    allow_empty_masks: bool = False,
) -> list[Pair]:
    """Return the dataset's pairs, or raise ``DataError`` with the first problem (one line naming the file).

    A passed check is remembered under ``<cache>/checks/`` keyed by the dataset fingerprint (names, sizes,
    mtimes), so verifying an unchanged dataset again costs only a directory listing.
    """
    pairs, problems = scan_pairs(data_dir)
    if problems:
        raise DataError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    fingerprint = dataset_fingerprint(pairs)
    record = _record_path(fingerprint, Path(cache_root) if cache_root is not None else None)
    try:
        seen = json.loads(record.read_text())
        if seen.get("n_pairs") == len(pairs):
            # A record is written for a passed check; one passed only by allow_empty_masks says so.
            if seen.get("all_masks_empty") and not allow_empty_masks:
                raise DataError(all_empty_message(Path(data_dir), len(pairs)))
            return pairs
    except (OSError, ValueError, AttributeError):
        pass  # no record yet, or an unreadable one: just check again

    report = check_dataset(data_dir, progress=progress, allow_empty_masks=allow_empty_masks)
    if not report.ok:
        more = f" (and {len(report.errors) - 1} more; see `hpsearch data check --data {report.data_dir}`)"
        raise DataError(report.errors[0] + (more if len(report.errors) > 1 else ""))
    payload = {
        "check_version": CHECK_VERSION,
        "fingerprint": fingerprint,
        "data_dir": str(Path(data_dir).expanduser().resolve()),
        "n_pairs": report.n_pairs,
        "all_masks_empty": bool(report.foreground_range) and report.foreground_range[2] == 0,
        "warnings": report.warnings,
    }
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temp file and rename so a concurrent reader never sees half a record.
        fd, tmp = tempfile.mkstemp(dir=record.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=1)
        os.replace(tmp, record)
    except OSError:
        pass  # the record is only an optimisation; a read-only cache must not fail a valid dataset
    return report.pairs
