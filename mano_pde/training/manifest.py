"""``run.json``: the digests of a run's files, its finished epoch count and the identity of its data.

The weights are verified by the digest ``model_config.json`` records (:func:`mano_pde.models.save_model`); this
record extends that to every file a reader uses. After each epoch the trainer writes the weights, their
config, ``log.csv``, then ``run.json`` with the SHA-256 of :data:`VERIFIED_FILES` (``model_config.json`` covers
the weights), the epoch they belong to and the identity of the data, and only then the resume state
(:mod:`mano_pde.training.state`). So

* a file changed after it was written (one digit of ``normalizers.json``, a row of ``log.csv``) is refused by
  :func:`check_run_files` (``evaluate``, :func:`~mano_pde.training.runs.load_run`), naming the file;
* a run killed between its weights and ``run.json`` is refused too (the weights of epoch ``e + 1`` do not match
  the record of epoch ``e``) instead of being scored under the wrong epoch count; ``--resume`` repeats the epoch;
* the epoch count a reader reports is the record's, not the number of rows ``log.csv`` happens to hold.

``versions.json`` (provenance, rewritten by every start) is not verified.

Data identity
-------------
A run records the sample stream it trained on and was tested on (:func:`data_identity`): the file, the
attributes that define its sample sequence (seed and generator parameters, or the imported source;
:data:`mano_pde.data.io.STREAM_KEYS`), its grid geometry (:mod:`mano_pde.grids`; records written before it have
none and are not compared on it), its sample count and the SHA-256 of the values read. ``--resume`` refuses
another file (:func:`identity_differences` names what differs); ``evaluate`` uses the recorded training stream
for its overlap rule (held-out samples never among the training ones), so a training file replaced after the
run trained cannot make it score training samples. Evaluating on another test file is legitimate and not refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserInputError
from ..files import atomic_write_text, sha256_file
from ..record_types import check_fields

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "VERIFIED_FILES",
    "RunManifest",
    "data_identity",
    "identity_differences",
    "write_manifest",
    "read_manifest",
    "run_file_problems",
    "check_run_files",
    "restore_config_file",
]

MANIFEST = "run.json"
MANIFEST_FORMAT = "mano_pde.run/1"
#: Verified by their digest in ``run.json`` (``final_metrics.json`` too, once written).
VERIFIED_FILES = ("config.json", "normalizers.json", "model_config.json", "log.csv")


@dataclass(frozen=True)
class RunManifest:
    """The typed content of ``run.json``."""

    format: str
    epoch: int
    files: dict[str, str]
    data: dict[str, Any]


def data_identity(path: str | os.PathLike, attrs: dict, n_samples: int, tensors: list) -> dict[str, Any]:
    """The identity of the samples a run read from one file.

    Parameters
    ----------
    path : path-like
        The data file.
    attrs : dict
        Its global attributes.
    n_samples : int
        Its number of samples.
    tensors : list of torch.Tensor
        The values read (CPU tensors), in a fixed order; their bytes are hashed.
    """
    from ..data.io import STREAM_KEYS

    h = hashlib.sha256()
    for t in tensors:
        h.update(memoryview(t.detach().contiguous().numpy()).cast("B"))  # the bytes, without a copy
    return {
        "file": os.fspath(path),
        "n_samples": int(n_samples),
        "stream": {k: str(attrs.get(k)) for k in STREAM_KEYS},
        # where the values sit (mano_pde.grids): the same values re-imported with another --grid are other data
        "grid_geometry": str(attrs.get("grid_geometry", "node")),
        "sha256": h.hexdigest(),
    }


def identity_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two :func:`data_identity` records, in words (``[]``: the same samples)."""
    out = []
    a, b = saved.get("stream", {}), now.get("stream", {})
    out += [f"{k} {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if "grid_geometry" in saved and saved["grid_geometry"] != now.get("grid_geometry"):  # older records lack it
        out.append(f"grid_geometry {saved['grid_geometry']} -> {now.get('grid_geometry')}")
    if saved.get("n_samples") != now.get("n_samples"):
        out.append(f"n_samples {saved.get('n_samples')} -> {now.get('n_samples')}")
    if not out and saved.get("sha256") != now.get("sha256"):
        out.append("the values of the samples read differ (SHA-256)")
    return out


def write_manifest(out: Path, epoch: int, data: dict[str, Any]) -> None:
    """Write ``run.json`` for the files now in ``out`` (atomically; after the files it lists)."""
    names = [*VERIFIED_FILES, "final_metrics.json"]
    files = {n: sha256_file(out / n) for n in names if (out / n).is_file()}
    record = {"format": MANIFEST_FORMAT, "epoch": int(epoch), "files": files, "data": data}
    atomic_write_text(out / MANIFEST, json.dumps(record, indent=2) + "\n")


def read_manifest(out: str | os.PathLike) -> RunManifest | None:
    """The run's ``run.json``, type-checked; ``None`` for a run written before it existed.

    Raises
    ------
    mano_pde.errors.UserInputError
        Not JSON, another format, or a key of the wrong type (the message names the file and the key).
    """
    from ..models.checkpoint import read_json

    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    advice = f"resume the training run (mano-pde train ... --resume -o {Path(out)}) to write it again"
    record = read_json(path, "the record of a run's files")
    try:
        if not isinstance(record, dict):
            raise UserInputError(f"holds a JSON {type(record).__name__}, not a table")
        missing = [k for k in ("format", "epoch", "files", "data") if k not in record]
        if missing:
            raise UserInputError(f"lacks the key(s) {missing}")
        check_fields(record, RunManifest)
        if record["format"] != MANIFEST_FORMAT:
            raise UserInputError(f"has format {record['format']!r}, expected {MANIFEST_FORMAT!r}")
    except UserInputError as exc:
        raise UserInputError(f"{path}: {exc}; {advice}") from None
    return RunManifest(**{k: record[k] for k in ("format", "epoch", "files", "data")})


def run_file_problems(out: str | os.PathLike, manifest: RunManifest) -> list[str]:
    """The files of ``manifest`` that are missing from ``out`` or do not match their digest."""
    out = Path(out)
    problems = []
    for name, digest in manifest.files.items():
        path = out / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name} does not match the digest recorded in {MANIFEST}")
    return problems


def check_run_files(out: str | os.PathLike, manifest: RunManifest) -> None:
    """Refuse a run whose files do not match ``run.json`` (changed after they were written, or an epoch's
    save was interrupted), naming the files and the way to write them again."""
    problems = run_file_problems(out, manifest)
    if problems:
        raise UserInputError(
            f"{Path(out)}: " + "; ".join(problems) + f" (epoch {manifest.epoch}): the file changed after it was "
            "written (corrupted or replaced) or the run was interrupted while saving an epoch. Resume the training "
            f"run (mano-pde train ... --resume -o {Path(out)}) to write it again"
        )


def restore_config_file(out: str | os.PathLike, config: TrainConfig) -> bool:
    """Write a run's ``config.json`` again when it is missing or damaged (not the digest ``run.json`` recorded)
    and ``config`` — the configuration of the command resuming it — serialises to exactly that digest: the same
    run, so nothing is guessed. Returns whether it was written (``False``: nothing to restore, no ``run.json`` to
    prove it by, or a readable file of another configuration — the caller's checks then name the damage or the
    differences).

    Raises
    ------
    mano_pde.errors.UserInputError
        ``config.json`` is missing or unreadable and ``config`` is not the run's configuration.
    """
    import logging

    out = Path(out)
    try:
        manifest = read_manifest(out)
    except UserInputError:
        return False
    want = None if manifest is None else manifest.files.get("config.json")
    path = out / "config.json"
    if want is None or (path.is_file() and sha256_file(path) == want):
        return False
    text = config.to_json()
    if hashlib.sha256(text.encode()).hexdigest() != want:
        state = "missing"
        if path.is_file():
            try:
                type(config).load(path)
                return False  # readable: the caller names how it differs from ``config``
            except UserInputError:
                state = "damaged (it differs from run.json's digest and is not a readable configuration)"
        raise UserInputError(
            f"{path} is {state}, and the configuration given is not the run's (its SHA-256 differs from the one "
            f"{MANIFEST} recorded): rerun with the run's original options to write it again, or use another -o"
        )
    atomic_write_text(path, text)
    logging.getLogger(__name__).warning(
        "%s was missing or damaged; written again from the resumed run's configuration (its SHA-256 matches %s)",
        path,
        MANIFEST,
    )
    return True
