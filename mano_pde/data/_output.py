"""Checks and an exclusive lock for the output files of ``generate`` and ``import``.

Both commands write ``OUT.nc`` (under a temporary name, renamed into place) and ``generate`` also keeps
``OUT.nc.parts/``. Before touching anything they check the output path (:func:`check_output_file`), then hold
an exclusive ``fcntl`` lock on ``OUT.nc.lock`` for the whole run (:func:`output_lock`; the lock file is opened
with ``O_NOFOLLOW`` and must be a regular file with one link, :func:`mano_pde.files.open_lock_file`), so two
runs on one path can never mix their samples: the second one stops at once with a clear message. The lock's holder
first removes the temporary files that killed earlier runs on the same output left (``.OUT.nc.PID.tmp``,
``.OUT.nc.parts.PID.tmp``; :func:`mano_pde.files.remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserInputError
from ..files import open_lock_file, remove_stale_temps

try:  # POSIX only; elsewhere runs are not protected against each other
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["check_output_file", "output_lock", "lock_path", "nearest_existing"]

log = logging.getLogger(__name__)


def lock_path(path: Path) -> Path:
    """The lock file beside ``path``: ``OUT.nc.lock``."""
    return path.with_name(path.name + ".lock")


def nearest_existing(folder: Path) -> Path:
    """``folder`` (absolute), or its nearest ancestor that exists: where missing folders would be created."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_output_file(path: Path, overwrite: bool) -> None:
    """Refuse output paths that cannot become a data file, before anything is written.

    Raises
    ------
    UserInputError
        ``path`` is an existing folder (with or without ``overwrite``), its folder is a file, or its folder
        (or the nearest existing ancestor, where the missing ones would be created) is not writable.
    FileExistsError
        ``path`` is an existing file and ``overwrite`` is false.
    """
    if path.is_dir():
        raise UserInputError(
            f"the output {path} is an existing folder, not a file{' (--overwrite replaces files only)' * overwrite}; "
            f"give a file name such as {path / 'darcy.nc'}"
        )
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite (overwrite=True) or choose another output")
    folder = nearest_existing(path.parent)
    if not folder.is_dir():
        raise UserInputError(f"cannot write {path}: {folder} is a file, not a folder; choose another output")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserInputError(
            f"cannot write {path}: the folder {folder} is not writable (permission denied); "
            "choose an output in a folder you can write to"
        )


def _holder(fd: int) -> tuple[str, str]:
    """What the lock file says about its holder: (phrase, pid)."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    pid = text[0] if text else "unknown"
    command = text[1] if len(text) > 1 else "generate"
    return f"another mano-pde {command} is writing", pid


@contextlib.contextmanager
def output_lock(path: Path, command: str) -> Iterator[None]:
    """Hold an exclusive lock on ``OUT.lock`` while writing ``path`` (non-blocking).

    The lock file holds ``"PID COMMAND"`` of the holder and is removed on release. The kernel releases the
    lock when the holder dies, so a killed run never blocks the next one.

    Raises
    ------
    UserInputError
        Another process holds the lock: "another mano-pde generate is writing OUT.nc (pid N)".
    mano_pde.files.UnsafePathError
        ``OUT.lock`` is a symbolic link, a hard link or not a regular file (it is never written through).
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = open_lock_file(lock)  # never through a planted symbolic link (UnsafePathError)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            what, pid = _holder(fd)
            os.close(fd)
            raise UserInputError(f"{what} {path} (pid {pid}); wait for it to finish or choose another output") from None
        # The previous holder removes the file on release: make sure we locked the file now at that name.
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
        log.debug("locked %s", lock)
        # what a killed earlier run on this output left: its temporary file and shard-folder temporaries
        remove_stale_temps(path.parent, (path.name, path.name + ".parts"))
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)  # releases the lock
