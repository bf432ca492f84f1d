"""make_split / save_split / load_split, split files, and the pinned official Kvasir-SEG split."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpsearch.cli import app
from hpsearch.data.discover import discover_pairs
from hpsearch.data.splits import Split, load_split, make_split, save_split
from hpsearch.errors import ConfigError, DataError

STEMS = [f"img{i:03d}" for i in range(100)]
# sha256 of the official split with the val carve at seed 0 and val_fraction 0.1. Pinned: a change means
# every earlier result was trained on a different train/val partition.
OFFICIAL_SEED0_HASH = "09d63b02ea6f64af3eb5de7f9bb7923c9af46e70ab4b70f760700fe47b8c9883"


def _write_lists(folder: Path, **lists: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, stems in lists.items():
        (folder / f"{name}.txt").write_text("\n".join(stems) + "\n")
    return folder


def _assert_partition(split: Split, stems: list[str]) -> None:
    train, val, test = set(split.train), set(split.val), set(split.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(stems)
    for part in (split.train, split.val, split.test):
        assert list(part) == sorted(part)


def test_random_split_counts_and_partition() -> None:
    split = make_split(STEMS, val_fraction=0.1, test_fraction=0.1, seed=0)
    assert split.counts() == {"train": 81, "val": 9, "test": 10}
    _assert_partition(split, STEMS)
    assert split.source.startswith("random") and split.seed == 0


def test_random_split_is_seeded() -> None:
    a = make_split(STEMS, seed=0)
    assert make_split(list(reversed(STEMS)), seed=0) == a  # input order does not matter
    b = make_split(STEMS, seed=1)
    assert a.hash != b.hash and set(a.test) != set(b.test)


def test_hash_is_sha256_of_canonical_json() -> None:
    split = Split(("b", "a"), ("c",), ("d",), source="x", seed=3)
    assert split.train == ("a", "b")
    text = json.dumps(
        {"test": ["d"], "train": ["a", "b"], "val": ["c"]}, sort_keys=True, separators=(",", ":")
    )
    assert split.hash == hashlib.sha256(text.encode()).hexdigest()
    assert split.short_hash == split.hash[:16]
    # Source and seed describe provenance; they are not part of the partition's identity.
    assert Split(("a", "b"), ("c",), ("d",), source="y", seed=9).hash == split.hash


def test_overlapping_parts_rejected() -> None:
    with pytest.raises(DataError, match="both train and test: a"):
        Split(("a", "b"), ("c",), ("a",))


def test_split_folder_with_test_txt(tmp_path: Path) -> None:
    folder = _write_lists(tmp_path / "s", train=STEMS[:80], test=STEMS[80:])
    split = make_split(STEMS, split_file=folder, val_fraction=0.1, seed=0)
    assert set(split.test) == set(STEMS[80:])
    assert split.counts() == {"train": 72, "val": 8, "test": 20}
    assert set(split.val) <= set(STEMS[:80])
    _assert_partition(split, STEMS)
    assert split.source == str(folder)


def test_split_folder_val_txt_is_the_held_out_part(tmp_path: Path) -> None:
    folder = _write_lists(tmp_path / "s", train=STEMS[:90], val=STEMS[90:])
    split = make_split(STEMS, split_file=folder, val_fraction=0.01, seed=0)
    assert set(split.test) == set(STEMS[90:])
    assert len(split.val) == 1  # at least one validation stem, carved from train


def test_split_folder_with_all_three_lists_is_used_as_given(tmp_path: Path) -> None:
    folder = _write_lists(tmp_path / "s", train=STEMS[:70], val=STEMS[70:85], test=STEMS[85:])
    split = make_split(STEMS, split_file=folder, seed=5)
    assert (
        split.train == tuple(STEMS[:70])
        and split.val == tuple(STEMS[70:85])
        and split.test == tuple(STEMS[85:])
    )


def test_split_list_tolerates_extensions_comments_and_blank_lines(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "train.txt").write_text("# train list\n" + "\n".join(f"{s}.jpg" for s in STEMS[:95]) + "\n\n")
    (folder / "test.txt").write_text("  " + "\n".join(STEMS[95:]) + "  \n")
    split = make_split(STEMS, split_file=folder)
    assert set(split.test) == set(STEMS[95:])


def test_split_file_mismatches_name_the_stems(tmp_path: Path) -> None:
    extra = _write_lists(tmp_path / "extra", train=STEMS[:80] + ["ghost1", "ghost2"], test=STEMS[80:])
    with pytest.raises(DataError, match=r"lists 2 stem\(s\) that are not in the data: ghost1, ghost2"):
        make_split(STEMS, split_file=extra)
    short = _write_lists(tmp_path / "short", train=STEMS[:80], test=STEMS[80:99])
    with pytest.raises(DataError, match=r"does not list 1 stem\(s\) of the data: img099"):
        make_split(STEMS, split_file=short)
    overlap = _write_lists(tmp_path / "overlap", train=STEMS[:81], test=STEMS[80:])
    with pytest.raises(DataError, match="img080"):
        make_split(STEMS, split_file=overlap)
    dup = _write_lists(tmp_path / "dup", train=STEMS[:80] + [STEMS[0]], test=STEMS[80:])
    with pytest.raises(DataError, match="train.txt.*listed twice: img000"):
        make_split(STEMS, split_file=dup)
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(DataError, match="needs train.txt and test.txt"):
        make_split(STEMS, split_file=empty)
    with pytest.raises(DataError, match="does not exist"):
        make_split(STEMS, split_file=tmp_path / "absent")


def test_bad_fractions_and_too_few_pairs() -> None:
    with pytest.raises(ConfigError, match="val_fraction is 1.5"):
        make_split(STEMS, val_fraction=1.5)
    with pytest.raises(DataError, match="no training pair would be left"):
        make_split(["a", "b"], val_fraction=0.1, test_fraction=0.1)


def test_save_load_round_trip_and_edit_detection(tmp_path: Path) -> None:
    split = make_split(STEMS, seed=4)
    path = save_split(split, tmp_path / "out" / "split.json")
    payload = json.loads(path.read_text())
    assert set(payload) == {"train", "val", "test", "source", "seed", "hash"}
    assert payload["hash"] == split.hash and payload["seed"] == 4
    assert load_split(path) == split
    assert make_split(STEMS, split_file=path, seed=99) == split  # a saved split is used as it is

    payload["train"], payload["test"] = payload["train"][1:], payload["test"] + payload["train"][:1]
    path.write_text(json.dumps(payload))
    with pytest.raises(DataError, match="was edited"):
        load_split(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_split(path)


def test_cli_split_writes_json(synth_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "split.json"
    result = CliRunner().invoke(
        app, ["data", "split", "--data", str(synth_data), "--out", str(out), "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    split = load_split(out)
    # 24 pairs: test round(2.4) = 2, val round(0.1 * 22) = 2, train the remaining 20.
    assert split.counts() == {"train": 20, "val": 2, "test": 2}
    assert split.short_hash in result.output and "train 20, val 2, test 2" in result.output


def test_official_kvasir_split_pinned(kvasir_dir: Path) -> None:
    folder = kvasir_dir / "splits" / "official-kvasir-seg"
    if not folder.is_dir():
        pytest.skip(f"official split lists not found in {folder}")
    pairs = discover_pairs(kvasir_dir)
    split = make_split(pairs, split_file=folder, val_fraction=0.1, seed=0)
    assert split.counts() == {"train": 792, "val": 88, "test": 120}
    held_out = {line.strip() for line in (folder / "val.txt").read_text().splitlines() if line.strip()}
    assert set(split.test) == held_out
    _assert_partition(split, [p.stem for p in pairs])
    assert split.hash == OFFICIAL_SEED0_HASH
    again = make_split(pairs, split_file=folder, val_fraction=0.1, seed=0)
    assert again.hash == split.hash
    other = make_split(pairs, split_file=folder, val_fraction=0.1, seed=1)
    assert set(other.val) != set(split.val) and other.test == split.test
    assert set(other.train) | set(other.val) == set(split.train) | set(split.val)
