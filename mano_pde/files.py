"""Crash-safe file writing: every file the package writes goes through :func:`atomic_write`.

A file is written to a temporary name in its own folder (``.NAME.PID.tmp``), flushed and ``fsync``-ed, then
renamed over the target (``os.replace``, atomic on POSIX) and the folder entry is synced. A reader therefore
sees either the previous complete file or the new complete file, never a torn one, whenever the writer is
killed. The temporary file is removed on any exception, ``KeyboardInterrupt`` included; a process killed by
``SIGKILL`` cannot clean up, so the next run removes temporary files whose process is gone
(:func:`remove_stale_temps`).

Every file and folder the package creates is created without following symbolic links: temporaries are
opened with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (:func:`create_exclusive`), lock files with ``O_NOFOLLOW``
(:func:`open_lock_file`), so a link planted at such a name is refused instead of truncating its target; a folder
the package keeps between runs (a generation run's ``OUT.nc.parts``) must be a real folder (:func:`check_own_folder`).
Output paths the user names are checked once: a name ending in ``/`` is refused where a file is expected
(:func:`check_file_name`), and paths built from templates (an experiment spec's ``run_dir``) must stay inside
the folder the user named (:func:`check_inside`).

Digests (:func:`sha256_file`) let a reader refuse a file that was damaged after it was written (a shard of a
generation run, a training state), which no rename can prevent.

Pure standard library: importing this module imports neither torch nor numpy.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import UserInputError

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
    "create_exclusive",
    "open_lock_file",
    "check_own_folder",
    "special_file_kind",
    "check_file_name",
    "check_inside",
    "UnsafePathError",
]

log = logging.getLogger(__name__)

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")

#: ``O_NOFOLLOW`` where the platform has it (0 elsewhere: no protection, as before).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class UnsafePathError(UserInputError):
    """A path the package was about to create is a symbolic link, not a regular file, or leaves its folder."""


def create_exclusive(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = "utf-8") -> IO[Any]:
    """Create ``path`` as a new regular file and open it for writing, never following a symbolic link.

    A leftover of this process at the same name (a temporary of an earlier, interrupted call) is unlinked
    first; unlinking removes a planted link itself, never its target. The file is then created with
    ``O_CREAT | O_EXCL | O_NOFOLLOW``, so whatever appears at the name in between is refused.

    Raises
    ------
    UnsafePathError
        Something other than a file we can create is at ``path`` (a link created in between, a folder).
    """
    path = Path(path)
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
        if path.is_symlink() or path.is_file():
            path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise UnsafePathError(
            f"cannot create {path}: something else appeared at that name while it was being created "
            "(a symbolic link or folder); remove it and rerun"
        ) from None
    return os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None)


def open_lock_file(path: str | os.PathLike) -> int:
    """Open (or create) the lock file ``path`` read-write without following links; return the descriptor.

    Raises
    ------
    UnsafePathError
        ``path`` is a symbolic link, not a regular file (a folder, a FIFO, a device) or a hard link to another
        file: writing the holder's pid into it would change something that is not our lock file.
    """
    path = Path(path)
    fix = f"remove {path} (it is not a lock file of mano_pde) and rerun"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if path.is_symlink() or exc.errno == errno.ELOOP:
            raise UnsafePathError(f"the lock file {path} is a symbolic link; {fix}") from None
        if path.is_dir():
            raise UnsafePathError(f"the lock file {path} is a folder; {fix}") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(st.st_mode) else "a hard link to another file"
        raise UnsafePathError(f"the lock file {path} is {what}; {fix}")
    return fd


def check_own_folder(path: str | os.PathLike, what: str) -> None:
    """Refuse ``path`` unless it is absent or a real folder: never a symbolic link (not followed), never a file.

    For folders the package creates, reuses and deletes itself (a generation run's ``OUT.nc.parts``): a link
    planted there would make it read, write or delete another folder's files, and a file cannot hold shards.
    Checked before anything is written, with the same advice as :func:`open_lock_file`.

    Raises
    ------
    UnsafePathError
        ``path`` is a symbolic link (to anything, or dangling) or exists and is not a folder.
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (or its folder is a file: the caller says so)
        return
    fix = f"remove {path} (it is not a {what} of mano_pde) and rerun"
    if stat.S_ISLNK(mode):
        raise UnsafePathError(f"the {what} {path} is a symbolic link; {fix}")
    if not stat.S_ISDIR(mode):
        raise UnsafePathError(f"the {what} {path} is not a folder; {fix}")


def special_file_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it exists but is not a regular file (links followed): ``"a folder"``,
    ``"a FIFO (named pipe)"``, ``"a device"``, ``"a socket"``; ``None`` for a regular file or nothing at all.

    Readers check their input with it before opening: a FIFO would block ``open`` (and the netCDF/HDF5 library)
    until something writes to it, i.e. for ever.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a regular file"


def check_file_name(path: str | os.PathLike, what: str = "output", example: str = "darcy.nc") -> Path:
    """``path`` as a :class:`~pathlib.Path`, refusing a name that ends in a path separator.

    ``-o newdir/`` names a folder; ``pathlib`` would silently drop the slash and write a *file* named ``newdir``.
    A file is expected here, so such a name is refused with the file name to give instead.

    Raises
    ------
    UserInputError
        ``path`` ends in ``/`` (or the platform's separator), or is empty.
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text:
        raise UserInputError(f"the {what} path is empty; give a file name such as {example}")
    seps = (os.sep, os.altsep) if os.altsep else (os.sep,)
    if text.endswith(seps) or Path(text).name in ("", ".", ".."):
        raise UserInputError(
            f"the {what} {text!r} names a folder (it ends in {text[-1]!r}), but a file is written here; give a file "
            f"name such as {os.path.join(text, example)}"
        )
    return Path(text)


def check_inside(root: str | os.PathLike, path: str | os.PathLike, what: str) -> Path:
    """``path`` (relative paths are taken under ``root``), required to stay inside ``root`` once resolved.

    Both are resolved (``..`` and symbolic links followed), so neither ``../x``, an absolute path elsewhere nor
    a link inside ``root`` that points out of it can make the package write outside the folder the user named.

    Returns
    -------
    Path
        ``root / path`` (unresolved, as the caller named it).

    Raises
    ------
    UnsafePathError
        The resolved path lies outside ``root`` (``root`` itself is inside).
    """
    root = Path(root)
    full = root / path
    base = root.resolve()
    target = full.resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(
            f"{what} {os.fspath(path)!r} resolves to {target}, which is not inside the output folder {base}; "
            "use a relative path below the output folder"
        )
    return full


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
        with create_exclusive(tmp, mode, encoding=encoding) as fh:
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
