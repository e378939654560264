"""Training loop for operator surrogates on Darcy data: resumable, multi-resolution, reproducible.

Why not neuraloperator's ``Trainer``: its resume restores weights and optimizer but not the batch order, it
has no hooks (since 1.0) for per-epoch logs of held-out error per grid, and batches of a multi-resolution
mix must be homogeneous in grid size. The loop below is short and uses neuraloperator's pieces for
everything else: models (``BaseModel``), losses (``LpLoss``, ``H1Loss``) and normalisers
(``UnitGaussianNormalizer``).

Reproducibility: weights are initialised from ``seed``; at the start of epoch ``e`` the global torch RNG
(dropout) is reseeded from ``(seed, e)`` and the batch order is a pure function of ``(seed, e)``. Hence a run
resumed after epoch ``e`` continues exactly as the uninterrupted run would (up to floating-point
non-determinism of the device).

Data parallelism: under ``torchrun`` (``WORLD_SIZE > 1``) the same loop runs in every process with the model
wrapped in ``DistributedDataParallel``; ``batch_size`` stays the global batch, each process computes its
share of every batch, and the gradients equal the single-process ones (see
:mod:`mano_pde.training.distributed`), so the loss curve matches single-process training up to float
reduction order. Dropout of process ``r`` is seeded from ``(seed, epoch, r)``. Only rank 0 logs and writes the
run directory; the held-out error is computed on shares of the held-out set and summed. A run may be resumed
with another number of processes (the batch sequence does not depend on it).

Held-out data: without a validation split (``n_val == 0``) the test error is logged every epoch
(``test_rel_l2_{r}`` in ``log.csv``). With ``n_val > 0`` the samples right after the training block of the
training file are the validation split: ``log.csv`` holds ``val_rel_l2_{r}`` every epoch and the test file is
scored once, after the last epoch, in ``final_metrics.json`` (with ``best_val_epoch`` / ``best_val_rel_l2``;
the weights stay the last epoch's). A final test score kept apart from the per-epoch log keeps every log row
of the same kind and makes "was the test file looked at during training?" answerable from the files.

This module holds the loop; its pieces live beside it: :mod:`~mano_pde.training.splits` (which samples train,
validate and test; the batch order), :mod:`~mano_pde.training.logs` (``log.csv`` and ``final_metrics.json``),
:mod:`~mano_pde.training.runs` (run folders), :mod:`~mano_pde.training.state` (the verified resume state) and
:mod:`~mano_pde.training.distributed` (data parallelism).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..acceleration import bf16_autocast, check_bf16, compile_model
from ..errors import UserInputError
from ..files import atomic_write_text, remove_stale_temps
from ..provenance import run_versions
from .config import TrainConfig
from .distributed import DistContext, setup_distributed
from .logs import FINAL_METRICS, LOG_FIELDS, best_validation, final_metrics, format_log, read_log
from .manifest import data_identity, identity_differences, restore_config_file, write_manifest
from .runs import check_new_run_folder, check_run_output_writable, is_run_dir, load_run_normalizers, non_finite_tensors
from .splits import epoch_batches, split_indices, split_train_val_test
from .state import STATE_FILE, has_train_state, load_train_state, save_train_state

__all__ = [
    "train",
    "make_loss",
    "split_indices",
    "split_train_val_test",
    "best_validation",
    "LOG_FIELDS",
    "FINAL_METRICS",
    "NonFiniteTrainingError",
    "NonFiniteLossError",
    "NonFiniteWeightsError",
]

log = logging.getLogger(__name__)


def make_loss(name: str):
    """Relative L2 (``LpLoss``) or relative H1 (``H1Loss``, non-periodic), summed over the batch."""
    from neuralop.losses import H1Loss, LpLoss

    if name == "l2":
        return LpLoss(d=2, p=2, reduction="sum")
    if name == "h1":
        return H1Loss(d=2, reduction="sum", periodic_in_x=False, periodic_in_y=False)
    raise ValueError(f"unknown loss {name!r}")


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


@torch.no_grad()
def _held_out_error(model, in_norm, out_norm, x, y, device, batch_size) -> float:
    """Mean per-sample relative L2 (neuraloperator ``LpLoss`` semantics) on physical values."""
    from neuralop.losses import LpLoss

    lp = LpLoss(d=2, p=2, reduction="sum")
    model.eval()
    total = 0.0
    for k in range(0, x.shape[0], batch_size):
        xb = in_norm.transform(x[k : k + batch_size].to(device))
        pred = out_norm.inverse_transform(model(xb))
        total += float(lp(pred.float(), y[k : k + batch_size].to(device)))
    return total / x.shape[0]


#: Dropout seed offset between processes of a data-parallel run (rank 0 keeps the single-process seeds).
_RANK_SEED_STRIDE = 1_000_000_007


def train(
    config: TrainConfig,
    output: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    score_test: bool = True,
) -> Path:
    """Train a model as ``config`` says and write the run directory ``output``.

    Runs data-parallel when started by ``torchrun`` with several processes (or inside an initialised
    ``torch.distributed`` process group): see :mod:`mano_pde.training.distributed`. Every process returns
    the run directory once rank 0 has written it.

    Parameters
    ----------
    config : TrainConfig
        The run's configuration. With ``resume``, it must equal the saved one (except ``device``): the
        learning-rate schedule spans all epochs, so a resumed run is the same run, finished.
    output : path-like
        Run directory (see :mod:`mano_pde.training.runs` for its files).
    resume : bool
        Continue an interrupted run from its last completed epoch.
    progress : bool
        Show a tqdm progress bar (loss, held-out error, ETA); rank 0 only.
    on_epoch : callable, optional
        Called (rank 0) with each epoch's log row once that epoch's files are saved; an exception it raises
        stops training there, leaving a resumable run (the hyperparameter search prunes trials this way).
    score_test : bool
        With a validation split, score the test file after the last epoch (``final_metrics.json``). ``False``
        for runs that must never look at the test file (trials of :mod:`mano_pde.experiments.tuning`).

    Returns
    -------
    pathlib.Path
        The run directory.

    Raises
    ------
    mano_pde.errors.UserInputError
        Invalid configuration or data, a resume with another configuration or an unreadable resume state, or
        (data-parallel) a global batch size that the number of processes does not divide.
    NonFiniteTrainingError
        Training diverged (a ``UserInputError``): :class:`NonFiniteLossError` when the training loss or the
        held-out error became NaN or infinite (names the epoch and batch), :class:`NonFiniteWeightsError` when an
        epoch left non-finite weights or learning rate.
    FileExistsError, FileNotFoundError
        ``output`` already holds a run (without ``resume``), is a file or a non-empty folder that is not a
        run (nothing is written) / holds no run (with ``resume``).
    """
    out = Path(output)
    check_run_output_writable(out)  # before anything is written (the lock file goes beside the folder)
    ctx = setup_distributed(config.device, config.batch_size)
    try:
        with contextlib.ExitStack() as lock:
            return _train(config, out, resume, progress and ctx.is_main, ctx, lock, on_epoch, score_test)
    finally:
        ctx.close()


def _check_run_folder(out: Path, resume: bool, config: TrainConfig) -> bool:
    """Whether the run in ``out`` is resumed; refuses a folder that cannot take this run (nothing is written but
    a missing or damaged ``config.json`` that ``run.json`` proves equal to ``config``)."""
    if resume:
        restore_config_file(out, config)
    if resume and not (out / "config.json").is_file():
        # killed before its configuration was written: nothing was trained, so the run starts (the folder is
        # still checked below: it must hold nothing but what such a run leaves)
        log.info("--resume: %s holds no config.json yet (a run stopped before its first epoch): starting it", out)
        resume = False
    if resume:
        diff = TrainConfig.load(out / "config.json").differences(config)  # the device may differ
        if diff:
            raise UserInputError(
                f"--resume: the configuration differs from the saved run in {out}: "
                + ", ".join(f"{k}: saved {a!r}, given {b!r}" for k, (a, b) in diff.items())
            )
    elif out.exists() and (is_run_dir(out) or (out / "config.json").exists()):
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another -o")
    else:
        check_new_run_folder(out)  # never write log.csv etc. into a folder of the user's files
    return resume


def _train(
    config: TrainConfig,
    out: Path,
    resume: bool,
    progress: bool,
    ctx: DistContext,
    lock: contextlib.ExitStack,
    on_epoch: Callable[[dict], None] | None = None,
    score_test: bool = True,
) -> Path:
    """:func:`train` in one process of a (possibly one-process) data-parallel run; rank 0 enters the run folder's
    lock into ``lock`` before its first write."""
    from tqdm.auto import tqdm

    from mano_pde.data import open_darcy
    from mano_pde.data._output import output_lock
    from mano_pde.data.io import same_sample_stream
    from mano_pde.data.torch_dataset import (
        DarcyTorchDataset,
        fit_normalizers,
        normalizer_from_dict,
        normalizer_to_dict,
    )
    from mano_pde.models import count_parameters, create_model, model_signature, save_model

    state_path = out / STATE_FILE
    resume = _check_run_folder(out, resume, config)  # early, so that bad options write nothing

    device = ctx.device
    test_path = config.test_data or config.data
    with open_darcy(config.data) as ds:
        n_file = int(ds.sizes["sample"])
        train_attrs = dict(ds.attrs)
    with open_darcy(test_path) as ds:
        n_test_file = int(ds.sizes["sample"])
        test_attrs = dict(ds.attrs)
        same_stream = same_sample_stream(train_attrs, test_attrs)
        test_geometry = test_attrs["grid_geometry"]
    geometry = train_attrs["grid_geometry"]  # the models use the data's true coordinates (mano_pde.grids)
    if test_geometry != geometry:
        raise UserInputError(
            f"the training file {config.data} is a {geometry} grid but the test file {test_path} a {test_geometry} "
            "grid: a run uses one grid geometry; give test data of the training file's geometry"
        )
    # Training: the first n_train; validation: the next n_val of the training file; test: the last n_test of the
    # test file. When both files hold the same sample sequence the blocks must not overlap.
    train_idx, val_idx, test_idx = split_train_val_test(
        n_file, n_test_file, max(config.n_train), config.n_val, config.n_test, same_stream
    )
    data_attrs = {k: train_attrs.get(k) for k in ("seed", "n_samples", "resolution", "mano_pde_schema")}

    train_sets = [
        DarcyTorchDataset(config.data, r, train_idx[:n])
        for r, n in zip(config.resolutions, config.n_train, strict=True)
    ]
    test_sets = [DarcyTorchDataset(test_path, r, test_idx) for r in config.resolutions]
    val_sets = [DarcyTorchDataset(config.data, r, val_idx) for r in config.resolutions] if config.n_val else []
    # what the run reads: recorded in run.json and the resume state; --resume refuses other data
    identity = {
        "train": data_identity(
            config.data, train_attrs, n_file, [t for d in train_sets + val_sets for t in (d.x, d.y)]
        ),
        "test": data_identity(test_path, test_attrs, n_test_file, [t for d in test_sets for t in (d.x, d.y)]),
    }

    torch.manual_seed(config.seed)
    model_kwargs = {"in_channels": 1, "out_channels": 1, **config.model_kwargs}
    if model_kwargs.get("grid_geometry", geometry) != geometry:
        raise UserInputError(
            f"grid_geometry={model_kwargs['grid_geometry']!r} contradicts the training file {config.data}, a "
            f"{geometry} grid; drop the model argument (the data's geometry is used)"
        )
    if geometry != "node":  # node grids: the model keywords (and so every saved file) stay as they always were
        model_kwargs["grid_geometry"] = geometry
    if "image_size" in model_signature(config.model) and "image_size" not in model_kwargs:
        # MANO counts its levels for a fixed grid (the authors' image_size): the finest training grid
        model_kwargs["image_size"] = max(config.resolutions)
    # unknown keywords, wrong types and out-of-range values: UserInputError (ModelArgumentError) naming them
    model = create_model(config.model, **model_kwargs).to(device)
    n_params = count_parameters(model)  # complex Fourier weights count twice, as in the FNO paper
    n_modes = getattr(model, "n_modes", None)
    coarsest = min(config.resolutions)
    if n_modes is not None and any(int(m) > coarsest for m in n_modes):
        log.warning(
            "n_modes=%s exceeds the %d-point training grid: Fourier weights above its Nyquist frequency are never "
            "trained, so on finer grids (zero-shot) they act with their random initial values; use n_modes <= %d "
            "per direction or train on a finer grid",
            tuple(n_modes),
            coarsest,
            coarsest,
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _scheduler(optimizer, config)

    start_epoch = 0
    rows: list[dict] = []
    if ctx.is_main:  # the run folder's lock, held until train returns; then the folder is checked again under it
        lock.enter_context(output_lock(Path(os.path.abspath(out)), "train"))
        resume = _check_run_folder(out, resume, config)  # another train may have written it meanwhile
        remove_stale_temps(out)  # temporaries of a killed earlier attempt
    ctx.barrier()  # every process has checked the folder before rank 0 writes to it
    resuming = ctx.broadcast(resume and has_train_state(out))  # rank 0 decides for all
    state = None
    if resuming:  # every process reads the same resume state (the run directory is shared)
        if not has_train_state(out):
            raise FileNotFoundError(
                f"process {ctx.rank} cannot see {state_path}, which rank 0 resumes from: the run directory must be "
                "on a filesystem shared by all processes"
            )
        # verified against the digests of train_state.json; falls back one epoch if the last state is damaged
        state = load_train_state(out, map_location=device, warn=ctx.is_main)
        _check_same_data(out, state.get("data"), identity)
    # Normalisers: rank 0 reads or fits them and shares them, so every process uses the very same values.
    norms = None
    if ctx.is_main:
        if resuming:
            norms = _resumed_normalizers(out, state)
        else:  # fitted first: data that give no normaliser (constant u) are refused before the run folder exists
            fitted = fit_normalizers(train_sets)
            norms = {"x": normalizer_to_dict(fitted[0]), "y": normalizer_to_dict(fitted[1])}
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "normalizers.json", json.dumps(norms, indent=2))
    norms = ctx.broadcast(norms)
    in_norm = normalizer_from_dict(norms["x"], out / "normalizers.json")
    out_norm = normalizer_from_dict(norms["y"], out / "normalizers.json")
    if resuming:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_epoch = int(state["epoch"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise UserInputError(
                f"{state_path} is not the training state of this run ({type(exc).__name__}: {first}); it cannot be "
                f"resumed: train into a new -o folder"
            ) from None
        if ctx.is_main:
            # the verified state holds the log rows (states of older runs: log.csv, which must hold every epoch)
            rows = state["log"][:start_epoch] if "log" in state else read_log(out / "log.csv", start_epoch)
            log.info("resuming %s after epoch %d of %d", out, start_epoch, config.epochs)
    if ctx.is_main:
        config_file = out / "config.json"
        if not config_file.is_file() or config_file.read_text() != config.to_json():
            config.save(config_file)  # atomic; a resumed run with the same configuration leaves the file alone
        versions = run_versions(device)
        versions["n_parameters"] = str(n_params)
        versions["train_data_attrs"] = json.dumps(data_attrs, default=str)
        versions["world_size"] = str(ctx.world_size)
        if ctx.enabled:
            versions["distributed_backend"] = str(ctx.backend)
        atomic_write_text(out / "versions.json", json.dumps(versions, indent=2))

    def write_epoch_files(epoch: int) -> None:
        """The weights, their config, the log and run.json (which verifies them), in that order (rank 0)."""
        save_model(model, out, record={"train_resolutions": list(config.resolutions)})
        atomic_write_text(out / "log.csv", format_log(rows, LOG_FIELDS + tuple(epoch_fields)))
        write_manifest(out, epoch, identity)

    in_norm, out_norm = in_norm.to(device), out_norm.to(device)
    net = ctx.wrap(model)  # DDP under torchrun (the wrapper trains; `model` is evaluated in fp32 and saved)
    if config.compile:
        net = compile_model(net, device)  # shares model's parameters; the first step of each batch shape compiles
    use_amp = config.amp_bf16
    if use_amp:
        check_bf16(device)

    loss_fn = make_loss(config.loss)
    test_fields = [f"test_rel_l2_{r}" for r in config.resolutions]
    val_fields = [f"val_rel_l2_{r}" for r in config.resolutions]
    # The per-epoch held-out error: validation with a validation split (the test file waits for the end), else test.
    epoch_fields, epoch_sets = (val_fields, val_sets) if config.n_val else (test_fields, test_sets)
    n_batches = sum(math.ceil(len(d) / config.batch_size) for d in train_sets)
    if resuming and start_epoch >= config.epochs and ctx.is_main:
        # a finished run: its files are written again from the verified state (damaged weights, config or log)
        write_epoch_files(start_epoch)
        log.info("%s: every epoch was done; its weights, model config and log are restored from %s", out, STATE_FILE)
    bar = tqdm(
        total=(config.epochs - start_epoch) * n_batches,
        disable=not progress,
        unit="batch",
        desc=f"{config.model} epochs {start_epoch + 1}-{config.epochs}",
    )
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(config.seed * 100_003 + epoch + _RANK_SEED_STRIDE * ctx.rank)
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        net.train()
        total, count, step_times = 0.0, 0, []
        batches = epoch_batches([len(s) for s in train_sets], config.batch_size, gen)
        for b, (d, idx) in enumerate(batches):
            t_step = time.perf_counter()
            # The same global batch in every process; each computes its share (one process: all of it).
            mine = ctx.shard(idx)
            weight = 1.0 if mine.numel() else 0.0
            if not weight:  # nothing left for this process in a short last batch: join the all-reduce anyway
                mine = idx[:1]
            x = train_sets[d].x[mine].to(device, non_blocking=True)
            y = train_sets[d].y[mine].to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with bf16_autocast(device, enabled=use_amp):  # fp32 weights; the loss below in fp32
                pred = out_norm.inverse_transform(net(in_norm.transform(x)))
            loss = loss_fn(pred.float(), y)
            _check_finite_loss(loss, weight, ctx, epoch, b, len(batches), config.resolutions[d], out)
            # sum over my samples * world / global batch; DDP averages over the world: the global-batch mean
            (loss / (idx.numel() / ctx.world_size) if weight else loss * 0.0).backward()
            optimizer.step()
            if weight:
                total += float(loss.detach())
                count += x.shape[0]
            step_times.append(time.perf_counter() - t_step)
            bar.update(1)
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        if config.compile and epoch == start_epoch and len(step_times) > 1:
            log.info(
                "torch.compile: first step %.1f s (compilation included), later steps %.3f s on average",
                step_times[0],
                sum(step_times[1:]) / (len(step_times) - 1),
            )
        scheduler.step()
        total, count = ctx.sum([total, count])
        row = {
            "epoch": epoch + 1,
            "train_loss": total / count,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": time.perf_counter() - t0,
        }
        for field, ts in zip(epoch_fields, epoch_sets, strict=True):
            row[field] = _held_out(model, in_norm, out_norm, ts, device, config.batch_size, ctx)
        _check_finite_epoch(model, row, epoch_fields, epoch, out)  # nothing of a diverged epoch is saved
        rows.append(row)
        if not ctx.is_main:
            continue
        held_out = {("val" if config.n_val else "test"): f"{row[epoch_fields[0]]:.4f}"}
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", **held_out)
        # model files first, then the resume state: a crash in between re-runs this epoch from the previous state
        write_epoch_files(epoch + 1)
        save_train_state(
            out,
            {
                "epoch": epoch + 1,
                "model": {k: v for k, v in model.state_dict().items() if k != "_metadata"},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                # verified with the state: what --resume restores the run's other files from
                "log": [dict(r) for r in rows],
                "normalizers": norms,
                "data": identity,
            },
        )
        log.info("epoch %d/%d %s", epoch + 1, config.epochs, {k: round(v, 6) for k, v in row.items()})
        if on_epoch is not None:
            on_epoch(dict(row))
    bar.close()
    if config.n_val and score_test:
        # The test file is scored once, with the last epoch's weights (also when resuming a run whose epochs are
        # all done but whose final metrics were not written yet).
        test = {
            f: _held_out(model, in_norm, out_norm, ts, device, config.batch_size, ctx)
            for f, ts in zip(test_fields, test_sets, strict=True)
        }
        if ctx.is_main:
            metrics = final_metrics(config.data, rows, val_fields, test, val_idx, test_idx, test_path)
            atomic_write_text(out / FINAL_METRICS, json.dumps(metrics, indent=2) + "\n")
            write_manifest(out, len(rows), identity)  # run.json now verifies final_metrics.json too
            log.info(
                "final test error (last epoch's weights) %s; %s",
                test,
                {k: metrics[k] for k in ("best_val_epoch", "best_val_rel_l2")},
            )
    ctx.barrier()  # every process returns once rank 0 has written the run directory
    return out


def _resumed_normalizers(out: Path, state: dict) -> dict:
    """The normalisers of a resumed run: those of its verified state, written again if ``normalizers.json``
    changed; states of older runs hold none, then the file is read and checked."""
    from mano_pde.models.checkpoint import read_json

    path = out / "normalizers.json"
    saved = state.get("normalizers")
    if saved is None:
        load_run_normalizers(path)  # names the file: not JSON, no x/y, degenerate, not one channel
        return read_json(path, "the normalisers of the run")
    text = json.dumps(saved, indent=2)
    try:
        same = path.read_text() == text
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        log.warning("%s differs from the run's verified training state (changed after it was written): restored", path)
        atomic_write_text(path, text)
    return saved


def _check_same_data(out: Path, saved: dict | None, now: dict) -> None:
    """``--resume`` refuses data other than those the run recorded (no record: a run of an older version)."""
    if not saved:
        return
    problems = []
    for side, what in (("train", "training"), ("test", "test")):
        diff = identity_differences(saved.get(side, {}), now[side])
        if diff:
            problems.append(
                f"{what} data {now[side]['file']} (was {saved.get(side, {}).get('file')}): " + ", ".join(diff)
            )
    if problems:
        raise UserInputError(
            f"--resume: {out} was trained on other data than it would read now; " + "; ".join(problems) + ". "
            "Restore the data files the run was trained on, or train into a new -o folder"
        )


def _check_finite_epoch(model, row: dict, fields: list[str], epoch: int, out: Path) -> None:
    """Stop when an epoch left non-finite weights, learning rate or held-out error (nothing of it is saved)."""
    kept = f"the files of epoch {epoch} are kept in {out}" if epoch else f"nothing was saved in {out}"
    bad = non_finite_tensors(model.state_dict())
    if bad or not math.isfinite(row["lr"]):
        what = f"the weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})" if bad else "the learning rate"
        raise NonFiniteWeightsError(
            f"{what} became NaN or infinite in epoch {epoch + 1}; training stopped ({kept}). Lower --lr, or check "
            "the data and the model settings"
        )
    bad = [f for f in fields if not math.isfinite(row[f])]
    if bad:
        raise NonFiniteLossError(
            f"the held-out error {', '.join(f'{f} = {row[f]}' for f in bad)} is not finite after epoch {epoch + 1} "
            f"although the weights are: the model's output overflows, or a held-out pressure field is 0 everywhere; "
            f"training stopped ({kept}). Lower --lr, or check the data"
        )


class NonFiniteTrainingError(UserInputError):
    """Training diverged: a loss, held-out error, weight or learning rate became NaN or infinite.

    The common base of :class:`NonFiniteLossError` and :class:`NonFiniteWeightsError`; catch it to handle any
    divergence (the hyperparameter search records such a trial as failed and goes on). Reported like a user
    error (one line, exit 2): the learning rate or the data are to blame.
    """


class NonFiniteWeightsError(NonFiniteTrainingError):
    """An epoch left NaN or infinite weights (or learning rate); ``train`` stops before saving it, naming the
    tensors."""


class NonFiniteLossError(NonFiniteTrainingError):
    """The training loss became NaN or infinite; ``train`` stops at the first such batch.

    Raised with the epoch and batch; the run directory keeps the last completed epoch. Usually the learning
    rate is too high or the data hold extreme values, so it is reported like a user error (one line, exit 2).
    """


def _check_finite_loss(loss, weight: float, ctx: DistContext, epoch: int, batch: int, n_batches: int, grid, out):
    """Raise :class:`NonFiniteLossError` if the batch loss is not finite (in any process of a DDP run)."""
    value = float(loss.detach()) if weight else 0.0
    bad = not math.isfinite(value)
    if ctx.enabled:  # every process must stop at the same batch, or the others wait in the gradient all-reduce
        bad = ctx.sum([float(bad)])[0] > 0
    if bad:
        kept = f"the files of epoch {epoch} are kept in {out}" if epoch else f"nothing was saved in {out}"
        shown = value if not math.isfinite(value) else "not finite (in another process)"
        raise NonFiniteLossError(
            f"the training loss is {shown} at epoch {epoch + 1}, batch {batch + 1} of {n_batches} "
            f"(grid {grid}); training stopped ({kept}). Lower --lr, or check the data and the model settings"
        )


def _held_out(model, in_norm, out_norm, ts, device, batch_size: int, ctx: DistContext) -> float:
    """Held-out error of one test set: whole in one process, summed over shares in a data-parallel run."""
    if not ctx.enabled:
        return _held_out_error(model, in_norm, out_norm, ts.x, ts.y, device, batch_size)
    mine = ctx.shard(torch.arange(len(ts)))
    local = 0.0
    if mine.numel():
        local = _held_out_error(model, in_norm, out_norm, ts.x[mine], ts.y[mine], device, batch_size) * mine.numel()
    return ctx.sum([local])[0] / len(ts)
