"""Find image/mask pairs in a dataset folder laid out as ``images/<stem>.<ext>``, ``masks/<stem>.<ext>``."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hpsearch.data.folder import GET_DATA
from hpsearch.data.io import IMAGE_EXTENSIONS
from hpsearch.errors import DataError

_MAX_NAMED = 5


@dataclass(frozen=True)
class Pair:
    """One training example: an image file and its mask file with the same stem."""

    stem: str
    image: Path
    mask: Path


def _name_some(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_NAMED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_NAMED else "")


def _broken_link(entry: os.DirEntry) -> str | None:
    """One line for an image-named symlink that leads nowhere (dangling) or round in a loop, else None.

    Skipping it silently would train on one pair less than the folder shows; a loop would crash the listing.
    """
    if not entry.is_symlink() or Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS:
        return None
    try:
        os.stat(entry.path)
    except OSError as exc:
        target = os.readlink(entry.path)
        loop = exc.errno == errno.ELOOP
        why = "a symlink loop" if loop else "a dangling symlink (its target does not exist)"
        return f"{entry.path}: {why}, pointing at '{target}'; fix the link or remove it"
    return None


def _list_folder(folder: Path) -> tuple[dict[str, Path], list[str], list[str]]:
    """One sorted listing of ``folder``: {stem: path}, duplicate-stem problems, and skipped file names."""
    by_stem: dict[str, Path] = {}
    duplicates: dict[str, list[str]] = {}
    skipped: list[str] = []
    links: list[str] = []
    # A single sorted scandir makes the result independent of the file system's listing order.
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):  # .DS_Store, editor swap files, ...
            continue
        link = _broken_link(entry)
        if link is not None:
            links.append(link)
            continue
        if not entry.is_file():
            continue
        path = Path(entry.path)
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(entry.name)
            continue
        stem = path.stem
        if stem in by_stem:
            duplicates.setdefault(stem, [by_stem[stem].name]).append(entry.name)
            continue
        by_stem[stem] = path
    problems = [
        f"{folder}: stem '{stem}' appears more than once ({', '.join(names)}); keep one file per stem"
        for stem, names in duplicates.items()
    ]
    return by_stem, links + problems, skipped


def _check_layout(data_dir: Path) -> tuple[Path, Path]:
    if not data_dir.exists():
        raise DataError(f"data folder {data_dir} does not exist; {GET_DATA}")
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} is a file, not a folder; {GET_DATA}")
    images, masks = data_dir / "images", data_dir / "masks"
    missing = [p.name + "/" for p in (images, masks) if not p.is_dir()]
    if missing:
        raise DataError(
            f"data folder {data_dir} has no {' and no '.join(missing)} sub-folder; expected "
            f"images/<stem>.jpg and masks/<stem>.jpg (or .png/.bmp/.tif); {GET_DATA}"
        )
    return images, masks


def scan_pairs(data_dir: str | Path) -> tuple[list[Pair], list[str]]:
    """Pairs found in ``data_dir`` plus a list of pairing problems (one line each) instead of raising.

    Layout problems (missing folder, no images at all) still raise ``DataError``: nothing can be checked.
    """
    data_dir = Path(data_dir).expanduser()
    images_dir, masks_dir = _check_layout(data_dir)
    images, problems, skipped_images = _list_folder(images_dir)
    masks, mask_problems, skipped_masks = _list_folder(masks_dir)
    problems += mask_problems
    for folder, found, skipped in ((images_dir, images, skipped_images), (masks_dir, masks, skipped_masks)):
        if not found:
            extra = f" (skipped {_name_some(skipped)}: not an image extension)" if skipped else ""
            raise DataError(
                f"{folder} is empty{extra}; expected files ending in {', '.join(IMAGE_EXTENSIONS)}; "
                f"{GET_DATA}"
            )
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask:
        problems.append(
            f"{images_dir}: {len(no_mask)} image(s) without a mask in masks/: {_name_some(no_mask)}; "
            "add the masks or remove the images"
        )
    if no_image:
        problems.append(
            f"{masks_dir}: {len(no_image)} mask(s) without an image in images/: {_name_some(no_image)}; "
            "add the images or remove the masks"
        )
    pairs = [Pair(stem, images[stem], masks[stem]) for stem in sorted(set(images) & set(masks))]
    return pairs, problems


def discover_pairs(data_dir: str | Path) -> list[Pair]:
    """All (image, mask) pairs in ``data_dir`` sorted by stem; any unmatched or duplicate stem raises."""
    pairs, problems = scan_pairs(data_dir)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    return pairs


def dataset_fingerprint(pairs: Iterable[Pair]) -> str:
    """sha256 over stems, file names, sizes and modification times: cheap (no file contents read).

    Any rewrite of a file changes its size or mtime, which is what invalidates caches keyed on this.
    """
    h = hashlib.sha256()
    for pair in pairs:
        h.update(pair.stem.encode())
        for path in (pair.image, pair.mask):
            try:
                st = path.stat()
            except OSError:
                raise DataError(f"{path}: file disappeared while reading the dataset; re-run") from None
            h.update(f"\0{path.name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        h.update(b"\n")
    return h.hexdigest()
