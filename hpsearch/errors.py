"""Typed errors. Library code raises these; only the CLI turns them into exit codes."""

from __future__ import annotations


class HpsearchError(Exception):
    """Base class for every error hpsearch reports to a user as one line (exit code 1)."""

    exit_code: int = 1  # usage errors (bad option, missing argument) keep the CLI parser's 2


class ConfigError(HpsearchError):
    """A config, study file or option is invalid (names the file and field)."""


class DataError(HpsearchError):
    """The dataset is missing, corrupt or inconsistent (names the file)."""


class StorageError(HpsearchError):
    """The Optuna storage cannot be reached or used (credentials masked)."""


class NonFiniteLossError(HpsearchError):
    """Training produced a NaN/inf loss; the study layer turns this into a pruned trial."""

    def __init__(self, message: str, *, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class OutputError(HpsearchError):
    """A file or folder cannot be written: a full disk, a read-only mount, a file in a folder's place (names
    the path and the cause). An operator's fault, never a trial's: a study gives the trial's ticket back."""
