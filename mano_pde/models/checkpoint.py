"""Saving and reloading models without unpickling code (safe under ``torch.load(weights_only=True)``).

neuraloperator's ``BaseModel.save_checkpoint`` pickles the constructor arguments; for its FNO they
include Python callables (``F.gelu``, the ``SpectralConv`` class), so since torch 2.6 made
``weights_only=True`` the default, such files only reload with ``weights_only=False``, i.e. by trusting
and executing pickled code (neuraloperator issue #558). This package avoids that:

* The attention models (:class:`~mano_pde.models.MANO` and the baselines) take their non-linearity and
  norm *by name*, so their recorded constructor arguments are plain data: neuralop's own
  ``save_checkpoint`` / ``from_checkpoint`` work, and the ``{name}_state_dict.pt`` it writes loads with
  plain ``torch.load(path)`` under the ``weights_only`` default. Their ``save_checkpoint`` (also used
  by neuralop's Trainer) additionally writes ``{name}_config.json``.
* :func:`save_model` writes, for any registry model (FNO/TFNO included):

  - ``{name}_config.json`` -- registry name + constructor keywords (plain JSON);
  - ``{name}_state_dict.pt`` -- tensors only, loadable with ``weights_only=True``;
  - ``{name}_metadata.pkl`` -- neuralop's pickled constructor arguments, so
    ``<ModelClass>.from_checkpoint(folder, name)`` keeps working.

* :func:`load_model` rebuilds the model from the JSON config and loads the tensors with
  ``weights_only=True``. Without a JSON config (e.g. a checkpoint written by neuralop's Trainer for an
  FNO) it falls back to ``{name}_metadata.pkl``, which needs ``trust_pickle=True`` when it holds code.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from neuralop.models.base_model import BaseModel
from torch import nn

from ..errors import UserInputError
from ..files import atomic_torch_save, atomic_write_text, sha256_file
from .records import CONFIG_FORMAT, model_config
from .registry import create_model

logger = logging.getLogger(__name__)

__all__ = ["CONFIG_FORMAT", "load_model", "load_torch_file", "model_config", "save_model"]


def read_json(path: str | Path, what: str) -> Any:
    """``json.loads`` of a file, with a one-line :class:`~mano_pde.errors.UserInputError` naming the file.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What it should hold, for the message (e.g. ``"a training configuration"``).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserInputError(
            f"{path} is not valid JSON ({err}); it should hold {what}: restore the file or write it again"
        ) from None


def save_model(model: nn.Module, folder: str | Path, name: str = "model", *, record: dict | None = None) -> Path:
    """Save a model as ``{name}_config.json`` + ``{name}_state_dict.pt`` (+ neuralop's ``_metadata.pkl``).

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`~mano_pde.models.create_model` or an attention model of this package.
    folder : str or Path
        Directory (created if needed).
    name : str, optional
        File-name prefix. Default ``"model"`` (the name neuralop's Trainer uses).
    record : dict, optional
        More plain-JSON keys for ``{name}_config.json`` (the trainer records the training grids,
        ``train_resolutions``); :func:`load_model` ignores them.

    Returns
    -------
    Path
        ``folder``.
    """
    config = {**model_config(model), **(record or {})}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = nn.Module.state_dict(model)  # tensors only (BaseModel.state_dict would add pickled metadata)
    # each file is written to a temporary name and renamed: a kill mid-save never leaves a torn file
    # the config, written after the weights, records their digest: load_model refuses weights changed since
    config["state_dict_sha256"] = atomic_torch_save(state, folder / f"{name}_state_dict.pt")
    atomic_write_text(folder / f"{name}_config.json", json.dumps(config, indent=2) + "\n")
    if isinstance(model, BaseModel):  # neuralop's constructor record, the "_metadata" of BaseModel.state_dict()
        atomic_torch_save(model.state_dict()["_metadata"], folder / f"{name}_metadata.pkl")
    logger.debug("saved %s model to %s (prefix %r)", config["model"], folder, name)
    return folder


def load_model(
    folder: str | Path,
    name: str = "model",
    map_location: str | torch.device | None = None,
    *,
    trust_pickle: bool = False,
    strict: bool = True,
) -> nn.Module:
    """Rebuild a model saved by :func:`save_model`, by a model's ``save_checkpoint`` or by neuralop's Trainer.

    Parameters
    ----------
    folder : str or Path
        Checkpoint directory.
    name : str, optional
        File-name prefix (``"model"``, or ``"best_model"`` for the Trainer's ``save_best``).
    map_location : str or torch.device, optional
        Device for the tensors; the returned model is moved there.
    trust_pickle : bool, optional
        Only used without ``{name}_config.json``: load ``{name}_metadata.pkl`` and the state dict with
        ``weights_only=False`` (executes pickled code -- only for files you trust). Default False.
    strict : bool, optional
        Passed to ``load_state_dict``. Default True.

    Returns
    -------
    torch.nn.Module
        The model, in eval mode is *not* forced (call ``.eval()`` for inference).
    """
    folder = Path(folder)
    state_path = folder / f"{name}_state_dict.pt"
    config_path = folder / f"{name}_config.json"
    if not state_path.exists():
        raise FileNotFoundError(
            f"no checkpoint {state_path}: expected {name}_state_dict.pt with {name}_config.json "
            f"(mano_pde.models.save_model) or {name}_metadata.pkl (neuralop save_checkpoint)"
        )
    weights_only = True
    digest = None
    if config_path.exists():
        config = read_json(config_path, "a model configuration")
        if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
            found = config.get("format") if isinstance(config, dict) else type(config).__name__
            raise UserInputError(f"{config_path} has format {found!r}, expected {CONFIG_FORMAT!r}")
        if not isinstance(config.get("model"), str) or not isinstance(config.get("kwargs"), dict):
            raise UserInputError(f"{config_path} lacks the model name or its keywords ('model', 'kwargs')")
        model = create_model(config["model"], **config["kwargs"])
        digest = config.get("state_dict_sha256")
    else:
        weights_only = not trust_pickle
        init = _load(folder / f"{name}_metadata.pkl", weights_only, None)
        cls_name = str(init.pop("_name", "")).lower()
        if cls_name not in BaseModel._models:
            raise UserInputError(f"checkpoint is for model {cls_name!r}, not a registered neuralop model")
        init.pop("_version", None)
        args = init.pop("args", ())
        model = BaseModel._models[cls_name](*args, **init)
    state = _load(state_path, weights_only, map_location)  # unreadable files are named by torch.load's checks
    if digest is not None and sha256_file(state_path) != digest:
        raise UserInputError(
            f"{state_path} does not match the digest recorded in {config_path.name}: the weights changed after "
            "they were saved (corrupted or replaced), or a save was interrupted. Restore the file, or resume the "
            "training run (mano-pde train ... --resume) to write it again"
        )
    state.pop("_metadata", None)
    model.load_state_dict(state, strict=strict)
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model = model.to(map_location)
    return model


def _load(path: Path, weights_only: bool, map_location) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"missing checkpoint file {path}")
    return load_torch_file(path, map_location=map_location, weights_only=weights_only)


def load_torch_file(
    path: str | Path, *, map_location=None, weights_only: bool = True, what: str = "a PyTorch checkpoint"
) -> Any:
    """``torch.load`` with a one-line :class:`~mano_pde.errors.UserInputError` for a file it cannot read.

    Tells apart a file that is not a ``torch.save`` archive at all (random bytes, truncated, another format)
    from one that holds pickled Python objects, which ``weights_only=True`` refuses on purpose.

    Parameters
    ----------
    path : str or Path
        The file.
    map_location, weights_only
        As for :func:`torch.load`.
    what : str, optional
        What the file should be, for the message (e.g. ``"the training state of a run"``).

    Raises
    ------
    mano_pde.errors.UserInputError
        The file is not a readable ``torch.save`` file, or holds pickled objects (``weights_only``).
    """
    import zipfile

    from ..errors import UserInputError

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        if not zipfile.is_zipfile(path):
            raise UserInputError(
                f"{path} is not {what}: it is not a file written by torch.save (truncated, corrupted or another "
                "kind of file); restore it or write it again"
            ) from err
        raise UserInputError(
            f"{path} contains pickled Python objects (e.g. F.gelu or the SpectralConv class recorded by "
            f"neuralop's FNO; neuraloperator issue #558) and torch.load(weights_only=True) refuses them. "
            f"Re-save with mano_pde.models.save_model, or pass trust_pickle=True if you trust the file."
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        first = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise UserInputError(
            f"{path} is not {what}: torch.load cannot read it ({first}); the file is truncated or corrupted, "
            "restore it or write it again"
        ) from err
