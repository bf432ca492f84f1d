"""The dataset folder a command uses, and what to say when there is none: one resolver, one message.

``DATA_ENV`` names the variable the CLI's ``--data`` option falls back to; the library itself never reads
the environment, it takes the values it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hpsearch.errors import ConfigError

DATA_ENV = "HPSEARCH_DATA"
_FETCH = (
    "get Kvasir-SEG with `hpsearch data download --out DIR` or make a synthetic set with "
    "`hpsearch data synth --out DIR`"
)
# How to name or get a dataset: the end of every message about a missing or unusable data folder.
GET_DATA = f"pass --data DIR or set {DATA_ENV}; {_FETCH}"
NO_DATA = f"no dataset given: pass --data DIR or set {DATA_ENV} to a folder with images/ and masks/; {_FETCH}"


def resolve_data_dir(*candidates: str | Path | None, otherwise: Callable[[], Path] | None = None) -> Path:
    """The first candidate given (``None`` and blank ones skipped), expanded and made absolute.

    Callers list the candidates by precedence, e.g. ``--data`` before a config's ``data.path``. With none
    given, ``otherwise()`` when there is one (a study's synthetic set), else a ``ConfigError`` saying how to
    name or get a dataset.
    """
    for value in candidates:
        if value is not None and str(value).strip():
            return Path(value).expanduser().resolve()
    if otherwise is not None:
        return otherwise()
    raise ConfigError(NO_DATA)
