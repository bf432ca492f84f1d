"""A tiny name -> factory registry used for models, losses, presets, samplers, pruners, optimizers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from hpsearch.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; a miss raises ConfigError listing the valid names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")``."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` without a decorator."""
        self.register(name)(obj)

    def get(self, name: str) -> T:
        """Return the entry for ``name`` or raise ConfigError naming the valid choices."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} '{name}'; expected one of: {', '.join(self.names())}"
            ) from None

    def accepted_kwargs(self, name: str, *, skip: tuple[str, ...] = ()) -> list[str]:
        """The keyword options the factory for ``name`` accepts (empty when it takes ``**kwargs``)."""
        factory = self.get(name)
        try:
            params = inspect.signature(factory).parameters.values()  # type: ignore[arg-type]
        except (TypeError, ValueError):  # not introspectable
            return []
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return []
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in params if p.kind in kinds and p.name not in skip]

    def defaults(self, name: str) -> dict[str, Any]:
        """The factory's default option values (empty when it cannot be introspected): what an entry built
        without an option gets, so two configs that differ only by spelling a default out compare equal."""
        try:
            params = inspect.signature(self.get(name)).parameters.values()  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return {}
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build entry ``name``: unknown names, unknown options and invalid values raise ConfigError.

        ``args`` are positional values the caller supplies (e.g. a channel count); ``kwargs`` are the user's
        options, checked against the factory's signature so a typo names the valid options.
        """
        factory = self.get(name)
        n_pos = len(args)
        try:
            names = list(inspect.signature(factory).parameters)[:n_pos]  # type: ignore[arg-type]
        except (TypeError, ValueError):
            names = []
        valid = self.accepted_kwargs(name, skip=tuple(names))
        listed = ", ".join(valid) or "none"
        unknown = sorted(set(kwargs) - set(valid)) if valid or not self._takes_var_kwargs(name) else []
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} for {self.kind} '{name}'; valid options: {listed}"
            )
        try:
            return factory(*args, **kwargs)  # type: ignore[operator]
        except ConfigError as exc:
            raise ConfigError(f"{self.kind} '{name}': {exc}; valid options: {listed}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"invalid options for {self.kind} '{name}' ({kwargs}): {exc}; valid options: {listed}"
            ) from None

    def _takes_var_kwargs(self, name: str) -> bool:
        try:
            params = inspect.signature(self.get(name)).parameters.values()  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return True
        return any(p.kind is p.VAR_KEYWORD for p in params)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
