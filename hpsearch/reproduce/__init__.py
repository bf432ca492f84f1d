"""``hpsearch reproduce``: the report's table, retrained and measured on a sealed test split.

Contract:

- **Columns** (``columns.py``): the 2 x 2 of recipe x architecture, U-Net and CBAM U-Net each with the
  report's baseline recipe and with the tuned recipe, plus the report's wider/deeper U-Net. Each column is a
  run config file in ``configs/`` (so it also runs alone with ``hpsearch train`` and ``hpsearch evaluate``);
  ``--tuned-config`` replaces both tuned columns with an exported config. Every change reproduce makes to a
  config (quick mode, caps, seeds, split) goes through ``resolve_run_config``.
- **Checks before training** (``sanity.py``): columns differ only in what they are meant to vary (else a
  ``ConfigError`` naming both columns and the field), all columns use one split (made by ``split_for``), and
  no test stem is trained or validated on.
- **Options** (``options.py``): ``ReproduceOptions``, every setting of one table, built once (by the CLI)
  and checked when built; ``plan_columns(options)`` and ``reproduce(options)`` take it.
- **Runs** (``execute.py``): every (column, seed) selects its best epoch on a validation carve of the
  training images; its checkpoint is then evaluated once on the test images (per-image Dice and IoU at
  threshold 0.5, original mask resolution). A finished run leaves ``<column>/seed<S>/run.json`` and is kept,
  not retrained, when reproduce runs again with the same config, data and split. The ``Plan`` holds only
  what was decided before training; the data the runs load is cached apart (``DataCache``).
- **Records** (``records.py``): ``RunRecord`` (one seed of one column: ``run.json`` and each entry of a
  column's runs), ``ColumnResult`` and ``ReproduceResults`` (``results.json``), typed, with
  ``to_json``/``from_json`` that keep the keys on disk; a file read and written back is unchanged.
- **Output** (``render.py``): ``results.json``, ``results.md`` (the table states image size, width, depth,
  epochs and training images of every column), ``split.json``, each column's ``worst.png`` and
  ``config.yaml``, and every run's ``curves.png``.
- **Reference figures** (``references.py``): numbers this project did not measure (the report's claims)
  come only from ``references.yaml``, each with its source, split, resolution and averaging.
"""

from hpsearch.reproduce.columns import (
    COLUMNS,
    CONTRASTS,
    Column,
    column_config,
    default_config_dir,
    load_column_configs,
    parse_columns,
    quick_config,
    with_cbam,
)
from hpsearch.reproduce.execute import Plan, host_description, load_finished, plan_columns, reproduce
from hpsearch.reproduce.records import ColumnResult, ReproduceResults, RunRecord
from hpsearch.reproduce.references import Citation, Figure, References, load_references
from hpsearch.reproduce.render import render_markdown, render_table
from hpsearch.reproduce.sanity import (
    SUSPICIOUS_DICE,
    SanityError,
    check_comparable,
    check_iou_le_dice,
    check_no_leakage,
    check_same_test_set,
    column_differences,
    leakage_warning,
    warn_if_suspicious,
)
from hpsearch.reproduce.table_options import ReproduceOptions

__all__ = [
    "COLUMNS",
    "CONTRASTS",
    "SUSPICIOUS_DICE",
    "Citation",
    "Column",
    "ColumnResult",
    "Figure",
    "Plan",
    "References",
    "ReproduceOptions",
    "ReproduceResults",
    "RunRecord",
    "SanityError",
    "check_comparable",
    "check_iou_le_dice",
    "check_no_leakage",
    "check_same_test_set",
    "column_config",
    "column_differences",
    "default_config_dir",
    "host_description",
    "leakage_warning",
    "load_column_configs",
    "load_finished",
    "load_references",
    "parse_columns",
    "plan_columns",
    "quick_config",
    "render_markdown",
    "render_table",
    "reproduce",
    "warn_if_suspicious",
    "with_cbam",
]
