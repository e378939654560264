"""The shard folder of a resumable generation run: ``OUT.nc.parts/`` with its manifest and verified shards.

Layout::

    OUT.nc.parts/
        manifest.json           schema, generation config, dtype, chunk size, and the SHA-256 of every saved shard
        chunk_000000000.npz     samples 0 … chunk_size - 1 (arrays ``a`` and ``u`` in the storage dtype)
        …

Crash safety (every write is atomic, :mod:`mano_pde.files`):

* The folder is born complete: it is assembled under a temporary name (``.OUT.nc.parts.PID.tmp``) with its
  manifest inside and then renamed, so ``OUT.nc.parts`` never exists without a manifest.
* A shard is written to a temporary name, fsync-ed and renamed; the main process then records its digest in
  the manifest. A shard whose digest is missing (a kill between the two) or does not match its bytes
  (truncated, emptied, one byte changed) is reported by name and computed again, never loaded.
* The folder is removed by renaming it to a temporary name first, so a kill during the removal leaves a
  temporary folder that the next run deletes (:func:`mano_pde.files.remove_stale_temps`), not a half-deleted
  ``.parts`` that would look like an unfinished run. When that happens after the file was renamed into place,
  the rerun of the same command finishes the removal and returns the file
  (:func:`mano_pde.data.generate.generate_darcy`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..files import (
    atomic_write_bytes,
    atomic_write_text,
    check_own_folder,
    fsync_folder,
    remove_stale_temps,
    sha256_bytes,
    sha256_file,
    temp_path,
)
from .schema import DarcyDataError

__all__ = ["ShardFolder", "shard_folder_path", "check_shard_folder"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_COMPARED = ("schema", "config", "dtype")


def shard_folder_path(path: Path) -> Path:
    """The shard folder of the output ``path``: ``OUT.nc.parts`` beside it."""
    return path.with_name(path.name + ".parts")


def check_shard_folder(parts: Path) -> None:
    """Refuse a ``.parts`` that is a symbolic link or not a folder (:func:`mano_pde.files.check_own_folder`).

    Called before anything is written (:func:`mano_pde.data.generate_darcy`) and again by
    :meth:`ShardFolder.open`: a link is never followed, so no shard is read, written or deleted through it.
    """
    check_own_folder(parts, "shard folder")


def _shard_name(start: int) -> str:
    return f"chunk_{start:09d}.npz"


def shard_bytes(a: np.ndarray, u: np.ndarray) -> bytes:
    """The bytes of the shard holding ``a`` and ``u`` (an uncompressed ``.npz``)."""
    buf = io.BytesIO()
    np.savez(buf, a=a, u=u)
    return buf.getvalue()


def save_shard(parts: Path, start: int, a: np.ndarray, u: np.ndarray) -> str:
    """Save one chunk atomically as the shard of ``start``; returns its SHA-256 (recorded by the main process)."""
    data = shard_bytes(a, u)
    atomic_write_bytes(parts / _shard_name(start), data)
    return sha256_bytes(data)


class ShardFolder:
    """``OUT.nc.parts/`` of one generation run: manifest, shard digests, verification and removal.

    Parameters
    ----------
    parts : Path
        The folder (``OUT.nc.parts``).
    manifest : dict
        What this run's manifest must say: ``schema``, ``config``, ``dtype``, ``chunk_size``.
    """

    def __init__(self, parts: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(parts)
        self.manifest = dict(manifest)
        self.shards: dict[int, dict[str, Any]] = {}

    # ------------------------------------------------------------------ open / create
    def open(self, overwrite: bool) -> tuple[int, bool]:
        """Create the folder or reuse an unfinished one; return ``(chunk_size, fresh)``.

        An unfinished run with the same parameters (schema, generator config, dtype) is resumed also with
        ``overwrite``: its shards hold exactly the samples this run would compute. ``overwrite`` discards only
        an unfinished run with other parameters, or a folder whose manifest is unreadable.

        Raises
        ------
        DarcyDataError
            An unfinished run with other parameters exists (and ``overwrite`` is false), or the folder holds
            shards whose manifest is unreadable (they cannot be checked against the parameters).
        mano_pde.files.UnsafePathError
            The folder's name holds a symbolic link or a file (:func:`check_shard_folder`).
        """
        check_shard_folder(self.path)
        if self.path.exists() and overwrite and not self._same_parameters():
            self.remove()
        if self.path.exists():
            old = self._read_existing()
            if old is not None:
                remove_stale_temps(self.path)  # shards half-written by workers that were stopped or killed
                return int(old["chunk_size"]), False
        self._create()
        return int(self.manifest["chunk_size"]), True

    def _same_parameters(self) -> bool:
        """Whether the folder's manifest is readable and describes a run of this one's parameters."""
        try:
            old = json.loads((self.path / MANIFEST).read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        return isinstance(old, dict) and "chunk_size" in old and all(old.get(k) == self.manifest[k] for k in _COMPARED)

    def _read_existing(self) -> dict | None:
        """The manifest of an existing folder; ``None`` if the folder held nothing and was removed."""
        mpath = self.path / MANIFEST
        try:
            old = json.loads(mpath.read_text())
            if not isinstance(old, dict) or "chunk_size" not in old:
                raise ValueError("not a manifest of mano_pde generate")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            shards = sorted(self.path.glob("chunk_*.npz"))
            if not shards:  # a folder without shards holds no work: start over (older versions left such folders)
                log.warning("%s has no readable manifest (%s) and no shards: starting the run afresh", self.path, exc)
                self.remove()
                return None
            raise DarcyDataError(
                f"{self.path} holds {len(shards)} shards but its manifest is unreadable ({exc}), so they cannot be "
                "checked against the parameters; delete the folder (or pass --overwrite) to start over"
            ) from exc
        same = {k: old.get(k) for k in _COMPARED} == {k: self.manifest[k] for k in _COMPARED}
        if not same:
            raise DarcyDataError(
                f"an unfinished run with different parameters exists at {self.path} "
                f"(its parameters: {old.get('config')}, dtype {old.get('dtype')}). Rerun with the same "
                "parameters to finish it, pass --overwrite (overwrite=True) to discard it, or choose another output"
            )
        self.manifest = old
        self.shards = {int(k): dict(v) for k, v in old.get("shards", {}).items()}
        if "shards" not in old:  # written before shards had digests: adopt the shards that load correctly
            self._adopt_unrecorded()
        return old

    def _create(self) -> None:
        staging = temp_path(self.path)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            self.manifest["shards"] = {}
            atomic_write_text(staging / MANIFEST, self._manifest_text())
            os.rename(staging, self.path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_folder(self.path.parent)

    # ------------------------------------------------------------------ shards
    def shard_path(self, start: int) -> Path:
        return self.path / _shard_name(start)

    def _manifest_text(self) -> str:
        self.manifest["shards"] = {str(k): v for k, v in sorted(self.shards.items())}
        return json.dumps(self.manifest, indent=2, allow_nan=False)  # strict JSON: never NaN/Infinity

    def record(self, start: int, stop: int, digest: str) -> None:
        """Record a saved shard's digest in the manifest (atomically rewritten).

        The shard counts as recorded only once the manifest holding it is on disk: an interrupt (Ctrl-C) during
        the write leaves it unrecorded in memory too, so the clean-up that adopts saved shards records it again.
        """
        entry = {"stop": int(stop), "sha256": digest}
        previous = self.shards.get(int(start))
        self.shards[int(start)] = entry
        try:
            atomic_write_text(self.path / MANIFEST, self._manifest_text())
        except BaseException:
            if previous is None:
                self.shards.pop(int(start), None)
            else:
                self.shards[int(start)] = previous
            self.manifest["shards"] = {str(k): v for k, v in sorted(self.shards.items())}
            raise

    def missing(self, chunks: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The chunks to compute: no shard, or a shard that is unrecorded or fails its digest (then deleted)."""
        todo = []
        for start, stop in chunks:
            path = self.shard_path(start)
            entry = self.shards.get(start)
            if not path.exists():
                if entry is not None:
                    log.warning("shard %s is recorded in the manifest but missing: computing it again", path)
                    self._forget(start)
                todo.append((start, stop))
                continue
            problem = self._problem(path, entry, stop)
            if problem:
                log.warning("shard %s %s: computing samples %d-%d again", path, problem, start, stop - 1)
                path.unlink(missing_ok=True)
                self._forget(start)
                todo.append((start, stop))
        return todo

    def _problem(self, path: Path, entry: dict | None, stop: int) -> str | None:
        if entry is None:
            return "was saved but its digest was never recorded (interrupted)"
        if int(entry.get("stop", -1)) != stop:
            return f"covers samples up to {entry.get('stop')}, not {stop}"
        if sha256_file(path) != entry.get("sha256"):
            return "does not match the digest in the manifest (truncated or corrupted)"
        return None

    def _forget(self, start: int) -> None:
        if self.shards.pop(start, None) is not None:
            atomic_write_text(self.path / MANIFEST, self._manifest_text())

    def _adopt_unrecorded(self) -> None:
        s = int(self.manifest["config"]["resolution"])
        dtype = np.dtype(self.manifest["dtype"])
        for path in sorted(self.path.glob("chunk_*.npz")):
            start = int(path.stem.split("_")[1])
            try:
                with np.load(path) as z:
                    a, u = z["a"], z["u"]
                ok = a.shape == u.shape and a.shape[1:] == (s, s) and a.dtype == dtype == u.dtype
            except Exception:  # noqa: BLE001 - any failure to read means: compute it again
                ok = False
            if ok:
                self.shards[start] = {"stop": start + a.shape[0], "sha256": sha256_file(path)}
            else:
                log.warning("shard %s of an older run is unreadable: computing it again", path)
                path.unlink(missing_ok=True)
        atomic_write_text(self.path / MANIFEST, self._manifest_text())

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The arrays of a shard, verified; ``None`` (with a warning naming the shard) if it fails a check.

        Checked: the digest in the manifest, then the content as the reader of the final file would check it
        (plain arrays ``a`` and ``u`` only — a pickled object is never loaded —, shape, dtype, finite values,
        ``a > 0``), so a shard that cannot give a valid file is computed again instead of being written.
        """
        path = self.shard_path(start)
        entry = self.shards.get(start)
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("shard %s cannot be read (%s): computing it again", path, exc)
            return None
        if entry is None or sha256_bytes(data) != entry.get("sha256") or int(entry.get("stop", -1)) != stop:
            log.warning("shard %s changed since it was saved (digest mismatch): computing it again", path)
            return None
        problem, arrays = self._content(data, stop - start)
        if problem:
            log.warning("shard %s %s: computing samples %d-%d again", path, problem, start, stop - 1)
            return None
        return arrays

    def _content(self, data: bytes, n: int) -> tuple[str | None, tuple[np.ndarray, np.ndarray] | None]:
        """``(problem, None)`` or ``(None, (a, u))`` for the bytes of a shard of ``n`` samples."""
        s = int(self.manifest["config"]["resolution"])
        dtype = np.dtype(self.manifest["dtype"])
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                a, u = z["a"], z["u"]
        except ValueError:  # object arrays: loading them would run pickled code
            return "holds pickled objects, not plain arrays (never loaded)", None
        except Exception as exc:  # noqa: BLE001 - any other failure to parse the .npz means: compute it again
            return f"is not a shard of arrays a and u ({type(exc).__name__}: {exc})", None
        if a.shape != (n, s, s) or u.shape != a.shape or a.dtype != dtype or u.dtype != dtype:
            return f"holds arrays {a.shape} {a.dtype} and {u.shape} {u.dtype}, not [{n}, {s}, {s}] {dtype}", None
        if not (np.isfinite(a).all() and np.isfinite(u).all()):
            return "holds NaN or infinite values", None
        if not (a > 0).all():
            return "holds a permeability <= 0", None
        return None, (a, u)

    # ------------------------------------------------------------------ removal
    def remove(self) -> None:
        """Delete the folder: renamed to a temporary name first, so a kill mid-way leaves no ``.parts``.

        This process's temporary name is emptied first: an earlier call interrupted in this process (Ctrl-C in
        a notebook) may have left it, and :func:`mano_pde.files.remove_stale_temps` spares a live process's.
        """
        trash = temp_path(self.path)
        if trash.exists():
            shutil.rmtree(trash, ignore_errors=True)
        if not self.path.exists():
            return
        os.rename(self.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
