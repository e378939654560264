"""Run directories: what a training run leaves behind and how to load it back.

A run directory holds

===========================  ==========================================================================
``config.json``              the full :class:`~mano_pde.training.config.TrainConfig` (readable)
``versions.json``            versions of python, torch, neuraloperator, mano_pde, numpy, … and the device
``normalizers.json``         the x/y unit-Gaussian normalisers fitted on the training split
``model_state_dict.pt``      model weights (tensors only: ``torch.load(weights_only=True)`` reads them)
``model_config.json``        registry name and constructor keywords (:func:`mano_pde.models.save_model`)
``model_metadata.pkl``       neuraloperator's constructor record (``Model.from_checkpoint(dir, "model")``)
``train_state.pt``           model, optimizer, scheduler and epoch, for ``--resume``
``train_state.prev.pt``      the same one epoch earlier (the fallback if ``train_state.pt`` is damaged)
``train_state.json``         the SHA-256 digests that verify both (:mod:`mano_pde.training.state`)
``run.json``                 the SHA-256 of the files above that readers use, the epoch they belong to and the
                             identity of the data (:mod:`mano_pde.training.manifest`)
``log.csv``                  per-epoch train loss, held-out relative L2 per training grid (``test_rel_l2_{r}``,
                             or ``val_rel_l2_{r}`` with a validation split), learning rate, time
``final_metrics.json``       with a validation split only (``n_val > 0``), and not for runs trained with
                             ``score_test=False`` (tuning trials): the test error of the last epoch's weights
                             (scored once), ``best_val_epoch`` and ``best_val_rel_l2``
===========================  ==========================================================================

Every file is written atomically (:mod:`mano_pde.files`: temporary name, fsync, rename); the resume state is
written after the model files and ``run.json``, so an interruption between them only repeats the last epoch, and
a resume state that was damaged after it was written is refused by its digest (falling back one epoch). The resume
state also holds the log rows, the normalisers and the data identity: ``--resume`` restores those files from it,
and ``--resume`` of a finished run writes its weights, model config, log and ``run.json`` again. While ``train``
writes a run folder it holds an exclusive lock on ``RUN.lock`` beside it (:func:`mano_pde.data._output.output_lock`,
as ``generate`` does for its files), so a second ``train`` on the same folder stops with a clear message.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mano_pde.acceleration import bf16_autocast, check_bf16, compile_model
from mano_pde.errors import UserInputError

from .config import TrainConfig

__all__ = [
    "Run",
    "load_run",
    "is_run_dir",
    "check_new_run_folder",
    "check_run_output_writable",
    "load_run_normalizers",
    "non_finite_tensors",
    "run_is_intact",
    "MODEL_NAME",
]

MODEL_NAME = "model"


def is_run_dir(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return (folder / "config.json").is_file() and (folder / f"{MODEL_NAME}_state_dict.pt").is_file()


def check_new_run_folder(out: Path) -> None:
    """Refuse an output that is a file, or an existing folder holding files that are not a run of ours.

    A folder whose only files are ``normalizers.json`` and temporary files of ours (a run interrupted before
    its first ``config.json``) is accepted; anything else (e.g. the user's own ``log.csv``) would be
    overwritten, so it is refused before anything is written.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"the output {out} is an existing file, not a folder; choose another -o")
    foreign = sorted(
        p.name
        for p in out.iterdir()
        if p.name != "normalizers.json" and not (p.name.startswith(".") and p.name.endswith(".tmp"))
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(
            f"the output folder {out} exists and holds files that are not a mano-pde run ({shown}); "
            "choose a new or empty -o folder (nothing was written)"
        )


def check_run_output_writable(out: Path) -> None:
    """Refuse a run folder that cannot be written (it, or the folder it would be made in, is read-only), before
    anything is written: the lock file goes beside the run folder, the run's files inside it."""
    folder = Path(os.path.abspath(out))
    targets = [folder] if folder.is_dir() else []
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserInputError(f"cannot write {out}: {parent} is a file, not a folder; choose another -o")
    for target in [parent, *targets]:
        if not os.access(target, os.W_OK | os.X_OK):
            raise UserInputError(
                f"cannot write {out}: the folder {target} is not writable (permission denied); choose another -o"
            )


def load_run_normalizers(path: Path):
    """The ``(x, y)`` normalisers of a run's ``normalizers.json``, checked: one channel each (Darcy data)."""
    from mano_pde.data.torch_dataset import load_normalizers

    norms = load_normalizers(path)
    for norm, what in zip(norms, ("x (permeability)", "y (pressure)"), strict=True):
        if norm.mean.numel() != 1 or norm.std.numel() != 1:
            raise UserInputError(
                f"{path}: the {what} normaliser has {norm.mean.numel()} mean and {norm.std.numel()} std values, but "
                "Darcy data have 1 channel; this file is not the normalisers of this run (restore it, or resume the "
                "run to write it again)"
            )
    return norms


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding NaN or infinite values."""
    return [
        k
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex()) and not bool(v.isfinite().all())
    ]


def run_is_intact(folder: str | os.PathLike) -> bool:
    """Whether every file the run's ``run.json`` records is present and unchanged (``True`` for runs written
    before ``run.json`` existed). The experiment runner resumes a run that is not, which restores its files."""
    import json

    from mano_pde.files import sha256_file

    from .manifest import read_manifest, run_file_problems

    folder = Path(folder)
    try:
        manifest = read_manifest(folder)
        digest = json.loads((folder / f"{MODEL_NAME}_config.json").read_text()).get("state_dict_sha256")
        weights = sha256_file(folder / f"{MODEL_NAME}_state_dict.pt")
    except (UserInputError, OSError, ValueError, AttributeError):
        return False
    if digest is not None and digest != weights:
        return False
    return manifest is None or not run_file_problems(folder, manifest)


@dataclass
class Run:
    """A trained model with its normalisers and configuration."""

    path: Path
    config: TrainConfig
    model: torch.nn.Module
    in_normalizer: Any
    out_normalizer: Any
    versions: dict[str, str]
    #: Finished epochs of the weights, from the verified ``run.json`` (``None`` for runs written before it).
    epochs_done: int | None = None
    #: The sample-stream attributes of the training file (``run.json``): evaluate's overlap rule compares with them.
    train_stream: dict[str, str] | None = None
    _compiled: torch.nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def train_resolution(self) -> int:
        """The finest training grid: where the ``resample`` baseline runs and the reference grid of MANO's
        ``ref-grid`` mode (the same grid whatever the order of ``--resolution`` flags)."""
        return max(self.config.resolutions)

    @torch.no_grad()
    def predict(
        self, a: torch.Tensor, batch_size: int = 16, sample_ids=None, *, bf16: bool = False, compile: bool = False
    ) -> torch.Tensor:
        """Pressure ``[N, 1, s, s]`` predicted from permeability ``[N, 1, s, s]`` (physical units).

        Parameters
        ----------
        a : torch.Tensor or numpy.ndarray
            Permeability ``[N, 1, s, s]`` (``N >= 1``, a square grid of at least 3 points), finite and > 0
            everywhere. A float32 tensor is used as it is; other real dtypes and numpy arrays are converted to
            float32.
        batch_size : int, optional
            Inference batch size (>= 1). Default 16.
        sample_ids : sequence of int, optional
            Names of the samples in error messages (e.g. their indices in a data file), one per sample; default
            ``0..N-1``.
        bf16 : bool, optional
            Run the model under bfloat16 autocast (:mod:`mano_pde.acceleration`); the prediction is returned
            in fp32 either way. Default False.
        compile : bool, optional
            Run ``torch.compile(model)`` (:func:`mano_pde.acceleration.compile_model`, made on the first such
            call and kept; each new grid or batch size compiles once). Default False.

        Raises
        ------
        mano_pde.errors.UserInputError
            ``batch_size < 1``; an input that is not a real array of shape ``[N, 1, s, s]`` (the message shows the
            shape given), holds no sample, or whose ``sample_ids`` do not name one id per sample; an input sample
            holding NaN/inf (attention mixes every grid point into every output, so one bad pixel would make the
            whole prediction NaN) or a permeability <= 0.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise UserInputError(f"batch_size must be a positive int, got {batch_size!r}")
        a = _checked_input(a, sample_ids)
        device = next(self.model.parameters()).device
        if bf16:
            check_bf16(device)
        model = self.model
        if compile:
            if self._compiled is None:
                self._compiled = compile_model(self.model, device)
            model = self._compiled
        self.model.eval()
        outs = []
        for k in range(0, a.shape[0], batch_size):
            x = self.in_normalizer.transform(a[k : k + batch_size].to(device))
            with bf16_autocast(device, enabled=bf16):
                y = model(x)
            outs.append(self.out_normalizer.inverse_transform(y.float()).cpu())
        return torch.cat(outs)


def _checked_input(a: Any, sample_ids) -> torch.Tensor:
    """The permeability given to :meth:`Run.predict` as a float32 tensor ``[N, 1, s, s]``, or a clear refusal."""
    import numpy as np

    if isinstance(a, np.ndarray):
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise UserInputError(f"the permeability must hold real numbers, got a numpy array of dtype {a.dtype}")
        a = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    elif not isinstance(a, torch.Tensor):
        raise UserInputError(
            f"the permeability must be a torch.Tensor or numpy array [N, 1, s, s], got {type(a).__name__}"
        )
    shape = list(a.shape)
    if a.is_complex() or a.dtype == torch.bool:
        raise UserInputError(f"the permeability must hold real numbers, got a tensor of dtype {a.dtype}")
    if a.ndim != 4 or shape[1] != 1 or shape[2] != shape[3] or shape[2] < 3:
        hint = " (add the channel axis: a[:, None])" if a.ndim == 3 else ""
        raise UserInputError(
            f"the permeability must have shape [N, 1, s, s] (N samples, 1 channel, a square grid of s >= 3 "
            f"points), got {shape}{hint}"
        )
    if shape[0] == 0:
        raise UserInputError("the permeability holds no samples (N = 0); give at least one")
    if a.dtype != torch.float32:
        a = a.to(torch.float32)
    if sample_ids is not None:
        try:
            ids = [int(i) for i in sample_ids]
        except (TypeError, ValueError):
            raise UserInputError(f"sample_ids must be a sequence of ints, got {sample_ids!r}") from None
        if len(ids) != shape[0]:
            raise UserInputError(f"sample_ids names {len(ids)} samples but the permeability holds {shape[0]}")
    else:
        ids = list(range(shape[0]))
    flat = a.reshape(shape[0], -1)
    for bad, what in (
        (~torch.isfinite(flat), "hold NaN or infinite values"),
        (flat <= 0, "hold a permeability <= 0 (it must be > 0)"),
    ):
        rows = bad.any(dim=1).nonzero().reshape(-1).tolist()
        if rows:
            shown = ", ".join(str(ids[i]) for i in rows[:10]) + (", ..." if len(rows) > 10 else "")
            raise UserInputError(
                f"input sample(s) {shown} {what} ({len(rows)} of {shape[0]}); the model would spread them over the "
                "whole prediction. Fix or drop those samples"
            )
    return a


def load_run(folder: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Load a run directory written by ``mano-pde train``.

    Raises
    ------
    FileNotFoundError
        If ``folder`` is not a run directory.
    mano_pde.errors.UserInputError
        If the weights do not fit the model the configuration describes (a mismatched checkpoint), a file
        is not JSON / not a torch file or holds a value of the wrong type (named with its key), the normalisers
        are degenerate (std 0 or not finite) or not one channel each, the weights hold NaN or infinite values
        (naming the tensor), ``config.json`` and ``model_config.json`` disagree on the training grid, or a file
        does not match the digest ``run.json`` records for it (:mod:`mano_pde.training.manifest`).
    """
    from mano_pde.models import load_model
    from mano_pde.models.checkpoint import read_json

    from .manifest import check_run_files, read_manifest

    folder = Path(folder)
    if not is_run_dir(folder):
        raise FileNotFoundError(
            f"{folder} is not a mano_pde run directory (expected config.json and {MODEL_NAME}_state_dict.pt); "
            "pass the -o directory of `mano-pde train`"
        )
    config = TrainConfig.load(folder / "config.json")
    if not (folder / "normalizers.json").is_file():
        raise FileNotFoundError(f"{folder} holds no normalizers.json: the run is incomplete; train it again")
    in_normalizer, out_normalizer = load_run_normalizers(folder / "normalizers.json")
    versions_file = folder / "versions.json"
    versions = read_json(versions_file, "the versions of a run") if versions_file.exists() else {}
    from mano_pde.device import resolve_device

    dev = resolve_device(device) if isinstance(device, str) else device
    try:
        model = load_model(folder, MODEL_NAME)
    except RuntimeError as exc:  # load_state_dict: missing/unexpected keys or shape mismatch
        first = " ".join(str(exc).splitlines()[:3])
        raise UserInputError(
            f"the weights in {folder} do not match the model its {MODEL_NAME}_config.json describes ({first}); "
            "the checkpoint files come from different models or configurations"
        ) from None
    model_kwargs = getattr(model, "mano_pde_config", {}).get("kwargs", {})
    for key in ("in_channels", "out_channels"):
        if int(model_kwargs.get(key, 1)) != 1:
            raise UserInputError(
                f"the model in {folder} has {key}={model_kwargs[key]}, but Darcy data give 1 channel "
                "(permeability in, pressure out): this checkpoint was not trained on this kind of data"
            )
    saved = getattr(model, "mano_pde_config", {}).get("model", type(model).__name__)
    if str(saved).replace("_", "-").lower() != config.model.replace("_", "-").lower():
        raise UserInputError(
            f"{folder}: config.json trains {config.model!r} but the checkpoint holds a {saved!r} model"
        )
    _check_training_grid(folder, config, model_kwargs)
    bad = non_finite_tensors(model.state_dict())
    if bad:
        raise UserInputError(
            f"{folder / f'{MODEL_NAME}_state_dict.pt'}: the weights hold NaN or infinite values (tensor "
            f"{', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): the training diverged; its predictions would be "
            "NaN. Train it again with a lower --lr"
        )
    manifest = read_manifest(folder)  # runs written before run.json existed are read unverified
    if manifest is not None:
        check_run_files(folder, manifest)
    model.to(dev).eval()
    return Run(
        path=folder,
        config=config,
        model=model,
        in_normalizer=in_normalizer.to(dev),
        out_normalizer=out_normalizer.to(dev),
        versions=versions,
        epochs_done=manifest.epoch if manifest is not None else None,
        train_stream=_recorded_stream(manifest),
    )


def _recorded_stream(manifest) -> dict[str, str] | None:
    """The sample-stream attributes of the training file the run recorded in ``run.json`` (or ``None``)."""
    stream = manifest.data.get("train", {}).get("stream") if manifest is not None else None
    return stream if isinstance(stream, dict) else None


def _check_training_grid(folder: Path, config: TrainConfig, model_kwargs: dict) -> None:
    """``config.json`` and ``model_config.json`` must describe the same training grid(s)."""
    from mano_pde.models.checkpoint import read_json
    from mano_pde.record_types import check_value

    record = read_json(folder / f"{MODEL_NAME}_config.json", "a model configuration")
    where = f"{folder / f'{MODEL_NAME}_config.json'}: "
    try:
        check_value(record.get("state_dict_sha256", ""), str, "state_dict_sha256")
        grids = record.get("train_resolutions")
        if grids is not None:
            check_value(grids, list[int], "train_resolutions")
    except UserInputError as exc:
        raise UserInputError(where + str(exc)) from None
    claims = []
    if grids is not None and sorted(grids) != sorted(config.resolutions):
        claims.append(f"train_resolutions {grids}")
    image_size = model_kwargs.get("image_size")
    if "image_size" not in config.model_kwargs and image_size is not None and image_size != max(config.resolutions):
        claims.append(f"image_size {image_size} (the finest training grid)")
    if claims:
        raise UserInputError(
            f"{folder}: config.json says the run trained on the grid(s) {config.resolutions}, but "
            f"{MODEL_NAME}_config.json records {' and '.join(claims)}: the files come from different runs or one was "
            "edited; restore them"
        )
