"""The resume state of a training run, verified by SHA-256 digests, with the previous epoch kept as a fallback.

Files in the run directory
--------------------------
``train_state.pt``       model, optimizer and scheduler state after the last finished epoch
``train_state.prev.pt``  the same after the epoch before (the fallback)
``train_state.json``     ``{"format": ..., "states": {sha256: {"epoch": e}}}``: the digests of the two states

Every epoch :func:`save_train_state` (1) writes the new index listing the new state's digest and the current
one's, (2) renames ``train_state.pt`` to ``train_state.prev.pt``, (3) writes the new ``train_state.pt``
(atomically). A kill between any two steps leaves at least one state whose digest the index lists.
:func:`load_train_state` hashes the candidates and resumes from the latest state whose bytes match a
recorded digest; a state file that was truncated, replaced or had one bit flipped after it was written is
never loaded. When ``train_state.pt`` is bad but the previous state is good, resume falls back one epoch
(with a warning naming the file); when neither is good it refuses with a message naming the files.

Runs written before the index existed (no ``train_state.json``) are resumed from ``train_state.pt``
unverified, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from ..files import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file

__all__ = [
    "STATE_FILE",
    "PREVIOUS_STATE_FILE",
    "STATE_INDEX",
    "STATE_FORMAT",
    "has_train_state",
    "save_train_state",
    "load_train_state",
]

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
PREVIOUS_STATE_FILE = "train_state.prev.pt"
STATE_INDEX = "train_state.json"
STATE_FORMAT = "mano_pde.train_state/1"


def has_train_state(out: str | os.PathLike) -> bool:
    """Whether ``out`` holds a resume state (current or previous)."""
    out = Path(out)
    return (out / STATE_FILE).is_file() or (out / PREVIOUS_STATE_FILE).is_file()


def _read_index(out: Path) -> dict[str, int] | None:
    """``{digest: epoch}`` of the index, ``None`` without one; a damaged index is a :class:`UserInputError`."""
    path = out / STATE_INDEX
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if record.get("format") != STATE_FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {STATE_FORMAT!r}")
        return {str(k): int(v["epoch"]) for k, v in record["states"].items()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserInputError(
            f"{path} is damaged ({type(exc).__name__}: {exc}); it holds the digests that verify the run's resume "
            "state, so the run cannot be resumed safely: train into a new -o folder"
        ) from None


def save_train_state(out: str | os.PathLike, state: dict[str, Any]) -> str:
    """Save ``state`` (with an ``"epoch"`` key) as the run's resume state; returns its SHA-256.

    See the module docstring for the order of the writes that keeps a verified state at every instant.
    """
    import io

    import torch

    out = Path(out)
    epoch = int(state["epoch"])
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    digest = sha256_bytes(data)
    old = _read_index(out) or {}
    current, previous = out / STATE_FILE, out / PREVIOUS_STATE_FILE
    states = {digest: epoch}
    # The fallback kept beside the new state: the current one if it is intact, else the previous one if intact
    # (a run resumed from its previous state after a damaged current one keeps that good state).
    current_digest = sha256_file(current) if current.is_file() and old else None
    keep_current = current_digest in old
    if keep_current:
        states.setdefault(current_digest, old[current_digest])
    elif previous.is_file() and old:
        previous_digest = sha256_file(previous)
        if previous_digest in old:
            states.setdefault(previous_digest, old[previous_digest])
    record = {"format": STATE_FORMAT, "states": {k: {"epoch": v} for k, v in states.items()}}
    atomic_write_text(out / STATE_INDEX, json.dumps(record, indent=2) + "\n")
    if keep_current:
        os.replace(current, previous)
    atomic_write_bytes(current, data)
    return digest


def load_train_state(out: str | os.PathLike, map_location: Any = None, *, warn: bool = True) -> dict[str, Any]:
    """The latest verified resume state of the run in ``out``.

    Parameters
    ----------
    out : path-like
        The run directory.
    map_location
        As for :func:`torch.load`.
    warn : bool
        Log the fallback to the previous state (rank 0 of a data-parallel run; the others stay quiet).

    Raises
    ------
    mano_pde.errors.UserInputError
        No state matches its recorded digest (corrupted, truncated or foreign files), the index is damaged,
        or a state does not hold what a training state holds.
    FileNotFoundError
        There is no state at all.
    """
    from mano_pde.models.checkpoint import load_torch_file

    out = Path(out)
    index = _read_index(out)
    what = "the training state of a run (--resume)"
    if index is None:
        path = out / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"--resume: {out} holds no {STATE_FILE}")
        if warn:
            log.warning("%s has no %s (written by an older mano_pde): resuming from it unverified", path, STATE_INDEX)
        return _checked(load_torch_file(path, map_location=map_location, what=what), path, None)
    problems = []
    found = []
    for name in (STATE_FILE, PREVIOUS_STATE_FILE):
        path = out / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        digest = sha256_file(path)
        if digest not in index:
            problems.append(f"{name} does not match any digest in {STATE_INDEX} (corrupted, truncated or replaced)")
            continue
        found.append((index[digest], path))
    if not found:
        raise UserInputError(
            f"--resume: no valid training state in {out}: " + "; ".join(problems) + ". The run cannot be resumed: "
            "train into a new -o folder (restore the files from a backup to resume)"
        )
    epoch, path = max(found)
    if warn and path.name != STATE_FILE:
        log.warning(
            "%s: %s; resuming from the previous state %s (epoch %d): one epoch is trained again",
            out,
            problems[0],
            path.name,
            epoch,
        )
    state = _checked(load_torch_file(path, map_location=map_location, what=what), path, epoch)
    return state


def _checked(state: Any, path: Path, epoch: int | None) -> dict[str, Any]:
    keys = ("epoch", "model", "optimizer", "scheduler")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise UserInputError(
            f"{path} is not the training state of a run (expected the keys {', '.join(keys)}, got {got}); "
            "it cannot be resumed: train into a new -o folder"
        )
    if epoch is not None and int(state["epoch"]) != epoch:
        raise UserInputError(
            f"{path} holds epoch {state['epoch']} but {STATE_INDEX} records epoch {epoch} for it; "
            "it cannot be resumed: train into a new -o folder"
        )
    return state
