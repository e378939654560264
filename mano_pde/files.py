"""Crash-safe file writing: every file the package writes goes through :func:`atomic_write`.

A file is written to a temporary name in its own folder (``.NAME.PID.tmp``), flushed and ``fsync``-ed, then
renamed over the target (``os.replace``, atomic on POSIX) and the folder entry is synced. A reader therefore
sees either the previous complete file or the new complete file, never a torn one, whenever the writer is
killed. The temporary file is removed on any exception, ``KeyboardInterrupt`` included; a process killed by
``SIGKILL`` cannot clean up, so the next run removes temporary files whose process is gone
(:func:`remove_stale_temps`).

Digests (:func:`sha256_file`) let a reader refuse a file that was damaged after it was written (a shard of a
generation run, a training state), which no rename can prevent.

Pure standard library: importing this module imports neither torch nor numpy.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_torch_save",
    "atomic_savefig",
    "temp_path",
    "stale_temps",
    "remove_stale_temps",
    "sha256_file",
    "sha256_bytes",
    "fsync_folder",
]

log = logging.getLogger(__name__)

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")


def temp_path(path: str | os.PathLike) -> Path:
    """The temporary name of ``path`` for this process: ``.NAME.PID.tmp`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def fsync_folder(folder: str | os.PathLike) -> None:
    """``fsync`` a folder so that a rename inside it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` atomically when the block ends.

    Parameters
    ----------
    path : path-like
        The target file. Its folder must exist.
    mode : {"w", "wb"}
        Text or binary.
    encoding : str, optional
        Text encoding (text mode only).

    Yields
    ------
    file object
        Write to it; on a normal exit it is flushed, fsync-ed and renamed to ``path``. On any exception
        (``KeyboardInterrupt`` and ``SystemExit`` included) the temporary file is removed and ``path`` keeps
        its previous content.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, mode, encoding=encoding if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_folder(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> str:
    """``torch.save(obj, path)`` atomically; returns the SHA-256 of the bytes written."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def atomic_savefig(fig: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """``fig.savefig(path)`` atomically (the format is taken from ``path``'s suffix)."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or "png")
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, **kwargs)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user: alive
        return True
    except OSError:  # pragma: no cover - e.g. pid out of range
        return False
    return True


def stale_temps(folder: str | os.PathLike, names: tuple[str, ...] | None = None, *, own: bool = False) -> list[Path]:
    """The temporary files and folders (``.NAME.PID.tmp``) in ``folder`` whose process is gone.

    Parameters
    ----------
    folder : path-like
        Where to look (not recursive). A missing folder is fine.
    names : tuple of str, optional
        Only temporaries of these target names (e.g. ``("darcy.nc", "darcy.nc.parts")``); default: all.
    own : bool
        Count this process's temporaries as well (for a caller that knows no one in this process is writing
        them, e.g. under the output's lock: they were left by an earlier call that was interrupted).

    Returns
    -------
    list of Path
        Sorted by name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _TEMP_RE.match(p.name)
        if m is None or (names is not None and m["name"] not in names):
            continue
        pid = int(m["pid"])
        if (pid == os.getpid() and own) or (pid != os.getpid() and not _pid_alive(pid)):
            found.append(p)
    return sorted(found)


def remove_stale_temps(folder: str | os.PathLike, names: tuple[str, ...] | None = None) -> list[Path]:
    """Remove temporary files and folders (``.NAME.PID.tmp``) left in ``folder`` by processes that are gone.

    Parameters
    ----------
    folder : path-like
        Where to look (not recursive); a missing folder is fine.
    names : tuple of str, optional
        Only the temporaries of these target names (as in :func:`stale_temps`); default: all.

    Returns
    -------
    list of Path
        What was removed (logged at INFO level). Temporaries of live processes, this one included, stay.
    """
    removed = []
    for p in stale_temps(folder, names):
        pid = int(_TEMP_RE.match(p.name)["pid"])
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:  # pragma: no cover - e.g. permissions
            log.warning("could not remove the stale temporary %s (%s)", p, exc)
            continue
        removed.append(p)
        log.info("removed %s, left by an interrupted run (process %d is gone)", p, pid)
    return removed
