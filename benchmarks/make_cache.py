"""Write a small resized copy of Kvasir-SEG to carry to a GPU machine (``benchmarks/gpu.py --data``).

    python benchmarks/make_cache.py --data ../shared/data/kvasir-seg   # -> benchmarks/gpu-cache, git-ignored

The original folder is 55 MB, close to the 64 MiB a working tree carried to a GPU machine may hold. This
copy holds every pair at the training resolution, resized by hpsearch's own cache code (``load_arrays``:
INTER_AREA, masks thresholded at half coverage), as JPEG (quality 95) images and PNG masks: about 25 MB for
all 1,000 pairs. It is a Kvasir-SEG folder with the original file stems, so the official split applies and
every hpsearch command reads it. Timings on it are faithful; Dice is close to, not the same as, training on
the originals (one more JPEG round at 256^2). ``gpu.py`` skips its report-style section on it, because PIL
decoding a 256^2 JPEG is not the report's cost of decoding the originals.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CACHE_MARKER, REPO, find_kvasir  # noqa: E402

DEFAULT_OUT = (REPO / "benchmarks" / "gpu-cache").relative_to(REPO)  # git-ignored (benchmarks/.gitignore)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="Kvasir-SEG folder (default: HPSEARCH_DATA or ../shared/data/kvasir-seg)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default: {DEFAULT_OUT})")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)

    from hpsearch.data.cache import load_arrays
    from hpsearch.data.check import verify_dataset

    data = find_kvasir(args.data)
    if data is None:
        print("no Kvasir-SEG folder found: pass --data DIR (with images/ and masks/)", file=sys.stderr)
        return 2
    pairs = verify_dataset(data, progress=False)
    stems = [p.stem for p in pairs]
    with tempfile.TemporaryDirectory() as tmp:
        images, masks = load_arrays(pairs, stems, size=args.size, cache_dir=tmp, progress=False)
        out = Path(args.out)
        for sub in ("images", "masks"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        for stem, image, mask in zip(stems, images, masks, strict=True):
            bgr = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(out / "images" / f"{stem}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(out / "masks" / f"{stem}.png"), np.asarray(mask, np.uint8) * 255)
    meta = {"source": str(data), "size": args.size, "pairs": len(stems), "images": "JPEG quality 95"}
    (out / CACHE_MARKER).write_text(json.dumps(meta, indent=1) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"wrote {len(stems)} pairs at {args.size}x{args.size} to {out} ({total:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
