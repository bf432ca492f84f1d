"""How a package names its public API without importing it: each name's module loads on first use.

The packages share this so that ``import hpsearch`` (from the CLI, or a ``hpsearch data`` command) does not
import torch, albumentations, matplotlib or optuna-dashboard before a name that needs them is touched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, where: Mapping[str, str], namespace: Mapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's module-level ``__getattr__`` and ``__dir__`` for the names in ``where``.

    ``where`` maps a public name to its module, absolute (``hpsearch.data.dataset``) or relative to
    ``package`` (``.fit``); ``module:attr`` exports the module's ``attr`` under another name (an alias).
    ``namespace`` is the package's ``globals()``, so ``dir()`` lists its eager names too.
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        module, _, attr = where[name].partition(":")
        return getattr(importlib.import_module(module, package), attr or name)

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
