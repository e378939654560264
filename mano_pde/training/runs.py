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
``log.csv``                  per-epoch train loss, held-out relative L2 per training grid (``test_rel_l2_{r}``,
                             or ``val_rel_l2_{r}`` with a validation split), learning rate, time
``final_metrics.json``       with a validation split only (``n_val > 0``): the test error of the last epoch's
                             weights (scored once), ``best_val_epoch`` and ``best_val_rel_l2``
===========================  ==========================================================================

Every file is written atomically (:mod:`mano_pde.files`: temporary name, fsync, rename); the resume state is
written after the model files, so an interruption between them only repeats the last epoch, and a resume
state that was damaged after it was written is refused by its digest (falling back one epoch).
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

__all__ = ["Run", "load_run", "is_run_dir", "check_new_run_folder", "MODEL_NAME"]

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


@dataclass
class Run:
    """A trained model with its normalisers and configuration."""

    path: Path
    config: TrainConfig
    model: torch.nn.Module
    in_normalizer: Any
    out_normalizer: Any
    versions: dict[str, str]
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
        a : torch.Tensor
            Permeability, finite everywhere.
        batch_size : int, optional
            Inference batch size (>= 1). Default 16.
        sample_ids : sequence of int, optional
            Names of the samples in error messages (e.g. their indices in a data file); default ``0..N-1``.
        bf16 : bool, optional
            Run the model under bfloat16 autocast (:mod:`mano_pde.acceleration`); the prediction is returned
            in fp32 either way. Default False.
        compile : bool, optional
            Run ``torch.compile(model)`` (:func:`mano_pde.acceleration.compile_model`, made on the first such
            call and kept; each new grid or batch size compiles once). Default False.

        Raises
        ------
        mano_pde.errors.UserInputError
            ``batch_size < 1``, or an input sample holding NaN/inf: attention mixes every grid point into
            every output, so one bad pixel would make the whole prediction NaN.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise UserInputError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(a, torch.Tensor) and a.is_floating_point() and a.ndim >= 1 and a.shape[0]:
            bad = (~torch.isfinite(a.reshape(a.shape[0], -1))).any(dim=1).nonzero().reshape(-1).tolist()
            if bad:
                ids = [int(sample_ids[i]) for i in bad] if sample_ids is not None else bad
                shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
                raise UserInputError(
                    f"input sample(s) {shown} hold NaN or infinite values ({len(ids)} of {a.shape[0]}); "
                    "the model would spread them over the whole prediction. Fix or drop those samples"
                )
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


def load_run(folder: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Load a run directory written by ``mano-pde train``.

    Raises
    ------
    FileNotFoundError
        If ``folder`` is not a run directory.
    mano_pde.errors.UserInputError
        If the weights do not fit the model the configuration describes (a mismatched checkpoint), a file
        is not JSON / not a torch file, or the normalisers are degenerate (std 0 or not finite).
    """
    from mano_pde.data.torch_dataset import load_normalizers
    from mano_pde.models import load_model
    from mano_pde.models.checkpoint import read_json

    folder = Path(folder)
    if not is_run_dir(folder):
        raise FileNotFoundError(
            f"{folder} is not a mano_pde run directory (expected config.json and {MODEL_NAME}_state_dict.pt); "
            "pass the -o directory of `mano-pde train`"
        )
    config = TrainConfig.load(folder / "config.json")
    if not (folder / "normalizers.json").is_file():
        raise FileNotFoundError(f"{folder} holds no normalizers.json: the run is incomplete; train it again")
    in_normalizer, out_normalizer = load_normalizers(folder / "normalizers.json")
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
    model.to(dev).eval()
    return Run(
        path=folder,
        config=config,
        model=model,
        in_normalizer=in_normalizer.to(dev),
        out_normalizer=out_normalizer.to(dev),
        versions=versions,
    )
