"""Writing outputs safely: check a folder before work starts, write files whole or not at all, and turn a
disk or folder fault into one ``OutputError`` line that names the path and the cause.

A full disk, a read-only mount or a file where a folder should be is the operator's problem, not a bad
config or a failed trial: the study code stops and gives the ticket back (``search/worker.py``), the CLI
prints the line. Torch's checkpoint writer reports a full disk as ``unexpected pos ...``; that is mapped
back to its cause by looking at the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from hpsearch.errors import OutputError

__all__ = ["MIB", "atomic_output", "check_writable", "describe_cause", "is_output_fault", "output_error"]

MIB = 1024 * 1024
# Causes an operator can fix (free space, remount, move a file away); other OSErrors are ordinary bugs.
_FAULT_ERRNOS = {
    errno.ENOSPC: "no space left on device (ENOSPC)",
    errno.EDQUOT: "disk quota exceeded (EDQUOT)",
    errno.EROFS: "read-only file system (EROFS)",
    errno.EACCES: "permission denied (EACCES)",
    errno.EPERM: "operation not permitted (EPERM)",
    errno.ENOTDIR: "a path component is a file, not a folder (ENOTDIR)",
    errno.EEXIST: "a file is in the way of a folder (EEXIST)",
    errno.EISDIR: "a folder is in the way of a file (EISDIR)",
    errno.EIO: "input/output error (EIO)",
}
# What torch's zip writer (PytorchStreamWriter) says when a write comes up short, as on a full disk.
_TORCH_WRITER_SIGNS = ("unexpected pos", "pytorchstreamwriter failed", "file write failed")
_HINT = "free some space, fix the folder, or pass another output folder"


def _probe_folder(path: Path) -> str | None:
    """The fault a folder shows now (full, read-only), for errors that carry no errno."""
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return _FAULT_ERRNOS[errno.EROFS]
    if not os.access(folder, os.W_OK):
        return _FAULT_ERRNOS[errno.EACCES]
    if st.f_bavail * st.f_frsize < MIB:
        return _FAULT_ERRNOS[errno.ENOSPC]
    return None


def is_output_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a disk or folder fault (an errno above, or torch's writer failing)."""
    if isinstance(exc, OutputError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _FAULT_ERRNOS or exc.errno is None
    return isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in _TORCH_WRITER_SIGNS)


def describe_cause(exc: BaseException, path: Path) -> str:
    """A few words for the cause of a failed write, e.g. ``no space left on device (ENOSPC)``."""
    if isinstance(exc, OSError) and exc.errno in _FAULT_ERRNOS:
        return _FAULT_ERRNOS[exc.errno]
    probed = _probe_folder(path)
    if probed is not None:
        return probed
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"write failed ({first[:160]})"


def output_error(path: str | Path, exc: BaseException, *, what: str = "") -> OutputError:
    """The one-line error for a write to ``path`` that failed with ``exc``."""
    p = Path(path)
    label = f"{what} " if what else ""
    return OutputError(f"cannot write {label}'{p}': {describe_cause(exc, p)}; {_HINT}")


def check_writable(folder: str | Path, *, what: str = "output folder", need_bytes: int = 0) -> Path:
    """Make ``folder`` (and its parents) if needed and prove it takes a file; with ``need_bytes``, that it
    has at least that much free space. Raises ``OutputError`` naming the folder and the cause."""
    p = Path(folder)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".hpsearch-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise output_error(p, exc, what=what) from None
    if need_bytes:
        free = shutil.disk_usage(p).free
        if free < need_bytes:
            raise OutputError(
                f"{what} '{p}' has {free / MIB:.1f} MiB free; at least {need_bytes / MIB:.1f} MiB is needed "
                f"(a checkpoint and its plots); {_HINT}"
            )
    return p


@contextlib.contextmanager
def atomic_output(path: str | Path, *, what: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that go by it still work); when the
    block succeeds it replaces ``path``, when it fails it is removed. A killed or failed write never leaves
    a half-written file. A disk or folder fault becomes ``OutputError``; other errors pass unchanged."""
    p = Path(path)
    tmp = p.with_name(f"{p.stem}.partial{p.suffix}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        tmp.replace(p)  # atomic on POSIX: readers see the old file or the new one
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OutputError) or not is_output_fault(exc):
            raise
        raise output_error(p, exc, what=what) from None
