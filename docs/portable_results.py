"""Rewrite the committed results so that they name no machine's folders, keeping every figure.

The results under docs/results/ were written on a machine where the study and reproduce folders lay in
/work/laptop-study, the checkout in /work/main and the data in /work/shared/data. Each absolute path in
them becomes what hpsearch now writes itself: a path relative to the folder of the file that names it (a
shipped file, such as configs/... or hpsearch/splits/..., relative to the repository), with the results
folder standing where docs/results/laptop is. The data folder, which a reader has somewhere else, becomes
the README's placeholder path/to/kvasir-seg; the exported example config gets no data path at all, but a
comment saying where it goes.

    python docs/portable_results.py               # rewrite in place, then check the figures
    grep -rn '/work/\\|/root/\\|/tmp/' docs/results # nothing left

Every JSON file is read back and compared with its original: all numbers and all strings that held no
absolute path must be equal, or the file is not written.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
# Where each machine folder stands now: the study/results folder; the checkout; the data (a placeholder).
MOVED = {"/work/laptop-study": RESULTS / "laptop"}
CHECKOUT = "/work/main"
DATA = {"/work/shared/data/kvasir-seg": "path/to/kvasir-seg"}
ABSOLUTE = re.compile(r"(sqlite:///)?(/(?:work|root|tmp)/[^\s\"'`,)\]]*)")
TEXT = {".json", ".yaml", ".yml", ".md", ".log", ".csv", ".txt"}
EXPORT = RESULTS / "laptop" / "lr_batch_best.yaml"
EXPORT_DATA = (
    "  path: null  # the Kvasir-SEG folder: pass --data DIR or set HPSEARCH_DATA (or write it here, "
    "relative to this file)"
)


def portable(path: str, folder: Path) -> str:
    """``path`` as a file in ``folder`` names it now."""
    if path in DATA:
        return DATA[path]
    if path == CHECKOUT or path.startswith(CHECKOUT + "/"):
        return path[len(CHECKOUT) + 1 :] or "."  # a shipped file: relative to the repository
    for old, new in MOVED.items():
        if path == old or path.startswith(old + "/"):
            return Path(os.path.relpath(new / path[len(old) + 1 :], folder)).as_posix()
    raise SystemExit(f"{path}: no rule for this folder; add one to MOVED")


def rewrite(text: str, folder: Path) -> str:
    return ABSOLUTE.sub(lambda m: (m.group(1) or "") + portable(m.group(2), folder), text)


def same_figures(old: Any, new: Any, where: str = "") -> None:
    """Equal trees, except strings that held an absolute path."""
    if isinstance(old, dict):
        assert isinstance(new, dict) and old.keys() == new.keys(), where
        for key in old:
            same_figures(old[key], new[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(old) == len(new), where
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            same_figures(a, b, f"{where}[{i}]")
    elif isinstance(old, str) and ABSOLUTE.search(old):
        assert isinstance(new, str) and not ABSOLUTE.search(new), where
    else:
        assert old == new and type(old) is type(new), f"{where}: {old!r} became {new!r}"


def main() -> int:
    changed = 0
    for path in sorted(RESULTS.rglob("*")):
        if not path.is_file() or path.suffix not in TEXT:
            continue
        text = path.read_text()
        new = text
        if path == EXPORT:
            new = re.sub(r"(?m)^  path: /.*$", EXPORT_DATA, new)
        new = rewrite(new, path.parent)
        if path.suffix == ".json":
            same_figures(json.loads(text), json.loads(new), path.name)
        if new != text:
            path.write_text(new)
            changed += 1
            print(f"rewrote {path.relative_to(REPO)}")
    texts = [p for p in RESULTS.rglob("*") if p.is_file() and p.suffix in TEXT]
    left = [p for p in texts if ABSOLUTE.search(p.read_text())]
    print(f"{changed} files rewritten; files still naming an absolute path: {len(left)}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
