"""Write a compact decoded cache of Kvasir-SEG for carrying to a GPU machine (``benchmarks/gpu.py --cache``).

    python benchmarks/make_cache.py --data ../shared/data/kvasir-seg   # -> benchmarks/gpu-cache, git-ignored

The arrays come from hpsearch's own cache code (``load_arrays``: INTER_AREA resize, masks thresholded at
half coverage), so they hold exactly what training sees. Layout of ``--out``:

    train_images.npy  uint8 (N, S, S, 3) RGB
    train_masks.npy   uint8 (N, S, S // 8): the {0, 1} masks packed 8 pixels per byte (np.packbits, axis -1)
    meta.json         size, stems (in order), source split, packing, sizes

The whole official split at 256^2 is about 200 MB of pixels and does not compress losslessly below
~135 MiB, while a working tree carried to the GPU machine may hold 64 MiB in all. So the cache keeps the
first N training stems of the official split that fit in ``--max-mib`` (default 48 MiB: about 245 of the
880 images). That is plenty for throughput measurements; ``gpu.py`` tiles it to the official epoch length
(792 training + 88 validation images) for its trial timing. The 120 test images are never included.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, find_kvasir  # noqa: E402

DEFAULT_OUT = (REPO / "benchmarks" / "gpu-cache").relative_to(REPO)  # git-ignored (benchmarks/.gitignore)


def load_compact(folder: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(images (N, S, S, 3) uint8, masks (N, S, S) uint8 {0, 1}, meta) from a folder this script wrote."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    images = np.load(folder / "train_images.npy")
    packed = np.load(folder / "train_masks.npy")
    size = int(meta["size"])
    masks = np.unpackbits(packed, axis=-1, count=size) if meta.get("masks_packed") else packed
    if images.shape != (len(meta["stems"]), size, size, 3) or masks.shape != images.shape[:3]:
        raise ValueError(f"{folder}: arrays {images.shape} / {masks.shape} do not match meta.json")
    return images, masks.astype(np.uint8), meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="Kvasir-SEG folder (default: HPSEARCH_DATA or ../shared/data/kvasir-seg)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default: {DEFAULT_OUT})")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--split", default="kvasir-official", help="shipped split name or split folder/file")
    ap.add_argument("--max-mib", type=float, default=48.0, help="size budget of the written arrays")
    args = ap.parse_args(argv)

    from hpsearch.data.cache import load_arrays
    from hpsearch.data.check import verify_dataset
    from hpsearch.data.splits import make_split, resolve_split_file

    data = find_kvasir(args.data)
    if data is None:
        print("no Kvasir-SEG folder found: pass --data DIR (with images/ and masks/)", file=sys.stderr)
        return 2
    pairs = verify_dataset(data, progress=False)
    split = make_split(pairs, split_file=resolve_split_file(args.split, data), val_fraction=0.1, seed=0)
    # The split's training part (train + its validation carve), in the split file's sorted order.
    stems = sorted(set(split.train) | set(split.val))
    per_pair = args.size * args.size * 3 + args.size * args.size // 8
    n = min(len(stems), int(args.max_mib * 2**20 // per_pair))
    chosen = stems[:n]
    t0 = time.perf_counter()
    images, masks = load_arrays(pairs, chosen, size=args.size, progress=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "train_images.npy", np.ascontiguousarray(images))
    np.save(out / "train_masks.npy", np.packbits(np.asarray(masks, np.uint8), axis=-1))
    meta = {
        "format": "hpsearch-compact-cache/1",
        "size": args.size,
        "split": args.split,
        "source": str(data),
        "stems": chosen,
        "n_split_train": len(stems),
        "masks_packed": True,
        "note": f"first {n} of the split's {len(stems)} training stems, sorted; test stems excluded",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    total = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    took = time.perf_counter() - t0
    print(f"wrote {n} pairs at {args.size}x{args.size} to {out} ({total:.1f} MiB, {took:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
