"""Zero-shot resolution-transfer evaluation of trained runs, always beside the resample reference.

For every run × test grid two methods (three for MANO) are scored on the same held-out samples:

``direct``
    the model is applied to the permeability on the test grid itself (zero-shot when the grid differs from
    the training grid);
``resample``
    the simple alternative: the input is subsampled to the training grid, the model runs there, and its
    prediction is interpolated (bilinear through the grid's true point positions) to the test grid. Only for test
    grids finer than the training grid that contain it (:func:`mano_pde.grids.nesting`: node grids
    ``(s - 1) = k (s_train - 1)``, half-open grids ``s = k s_train``, cell grids ``s = k s_train`` with ``k`` odd).
``ref-grid``
    multipole models (MANO) saved without a reference grid only: ``direct`` again, with the layers'
    reference-grid mode switched on at the finest training grid (see
    :class:`~mano_pde.layers.MultipoleAttention`): zero-shot, same weights, full-resolution input, but
    windows that keep their physical size. Only for test grids finer than the finest training grid.

A zero-shot claim is only meaningful when ``direct`` beats ``resample``.

Grid geometry: a run's models use the grid geometry of its training file (:mod:`mano_pde.grids`; recorded as the
model keyword ``grid_geometry``, absent = node); test data of another geometry are refused before anything is
scored or written, since coordinates, nesting and the resample reference would silently mix two geometries.

Precision and kernels (:mod:`mano_pde.acceleration`): ``bf16=True`` runs every model under bfloat16 autocast
(fp32 weights; predictions and errors in fp32); ``compile=True`` runs it through ``torch.compile`` (each test
grid compiles once; the per-sample inference times then include the compilation).

Outputs are one set: ``results.json``, ``results.md``, the plots, and ``results.complete.json`` written last
(the files of the set with their SHA-256, and the runs that were unfinished). Every file is replaced
atomically and the previous marker is removed first, so a folder without the marker holds an interrupted
evaluation. Runs that stopped before their last epoch are scored with a warning, and their records say so
(``epochs_done`` / ``epochs``).
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserInputError
from ..files import atomic_write_text, remove_stale_temps, sha256_file
from ..grids import GEOMETRIES, nesting
from .metrics import H1_MIN_POINTS, per_sample_rel_h1, per_sample_rel_l2

__all__ = [
    "evaluate",
    "test_indices_for",
    "run_geometry",
    "run_labels",
    "check_geometry_matches",
    "check_resolutions",
    "COMPLETE_MARKER",
]

#: Written last by :func:`evaluate`, listing the files of the set with their SHA-256; absent while (or after an
#: interrupted) evaluation writes.
COMPLETE_MARKER = "results.complete.json"
#: The files of one evaluation set (the plots only with ``plots=True``).
OUTPUT_FILES = ("results.json", "results.md", "error_vs_resolution.png", "predictions.png")

log = logging.getLogger(__name__)


def test_indices_for(run, data: str | os.PathLike, n_test: int | None) -> np.ndarray:
    """Held-out sample indices of ``data`` for ``run``: never samples the run trained on.

    When ``data`` holds the same sample sequence as the run's training file (same file, or generated with the
    same seed and parameters), the last ``n_test`` samples are used (default: the run's own ``n_test``) and
    must lie after the training block and the run's validation block (``n_val`` samples right after it). For an
    independent file, the last ``n_test`` samples (default: all).
    """
    from mano_pde.data import open_darcy
    from mano_pde.data.io import same_sample_stream

    with open_darcy(data) as ds:
        n_file = int(ds.sizes["sample"])
        test_attrs = dict(ds.attrs)
    # the training stream the run recorded (run.json), not whatever file now has the training file's name
    recorded = getattr(run, "train_stream", None)
    if recorded is not None:
        same = same_sample_stream(recorded, test_attrs)
    else:  # runs written before run.json existed
        try:
            with open_darcy(run.config.data) as ds:
                same = same_sample_stream(dict(ds.attrs), test_attrs)
        except FileNotFoundError:
            same = Path(run.config.data).name == Path(data).name
    n_train = max(run.config.n_train)
    n_seen = n_train + run.config.n_val  # the validation block follows the training block
    if same:
        n = run.config.n_test if n_test is None else n_test
        if n_file - n < n_seen:
            seen = f"trained on (its first {n_train})"
            if run.config.n_val:
                seen = f"trained and validated on (its first {n_train} + {run.config.n_val})"
            raise UserInputError(
                f"{data} holds the samples {run.name} {seen}; the last {n} of its "
                f"{n_file} samples would overlap them. Use --n-test <= {n_file - n_seen} or independent test data"
            )
    else:
        n = n_file if n_test is None else n_test
        if n > n_file:
            raise UserInputError(f"--n-test {n} but {data} holds only {n_file} samples")
    return np.arange(n_file - n, n_file)


def run_labels(paths: list[str | os.PathLike]) -> list[str]:
    """The label of each run in the records: its folder name, or where names collide (seeded runs are all named
    ``seed<k>``) the shortest path suffix that tells it apart, e.g. ``mano/seed0`` beside ``fno/seed0``.

    Raises
    ------
    mano_pde.errors.UserInputError
        The same run folder given twice.
    """
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    seen: dict[tuple[str, ...], str] = {}
    for p, given in zip(parts, paths, strict=True):
        if p in seen:
            raise UserInputError(f"the run {given} is given twice (also as {seen[p]}); name each run once")
        seen[p] = os.fspath(given)
    labels = []
    for p in parts:
        k = next(k for k in range(1, len(p) + 1) if sum(q[-k:] == p[-k:] for q in parts) == 1)
        labels.append(Path(*p[-k:]).as_posix())
    return labels


def check_resolutions(data: str | os.PathLike, resolutions) -> list[int]:
    """The test grids, sorted and deduplicated, each an integer of at least 3 points nested in the grid of ``data``
    (:func:`mano_pde.data.io.subsample_factor`); else :class:`~mano_pde.data.DarcyDataError` listing the reachable
    grids. :func:`evaluate` checks them before it touches its output folder."""
    from mano_pde.data import open_darcy
    from mano_pde.data.io import _as_int, subsample_factor

    grids = sorted({_as_int(r, "resolution (--resolutions)") for r in resolutions})
    with open_darcy(data, check_values=False) as ds:
        native, geometry = int(ds.sizes["x"]), str(ds.attrs["grid_geometry"])
    for r in grids:
        subsample_factor(native, r, geometry)
    return grids


def run_geometry(run) -> str:
    """The grid geometry a run was trained on: its model's ``grid_geometry`` keyword (runs from before grid
    geometries existed, and every run on node-grid data, have none: ``"node"``)."""
    model = run.model
    kwargs = getattr(model, "mano_pde_config", {}).get("kwargs", {})
    return str(getattr(model, "grid_geometry", None) or kwargs.get("grid_geometry") or "node")


def check_geometry_matches(runs, data: str | os.PathLike) -> str:
    """The grid geometry of ``data``; :class:`~mano_pde.errors.UserInputError` if a run was trained on another."""
    from mano_pde.data import open_darcy

    with open_darcy(data, check_values=False) as ds:
        geometry = str(ds.attrs["grid_geometry"])
    for run in runs:
        trained = run_geometry(run)
        if trained != geometry:
            raise UserInputError(
                f"run {run.name} was trained on {trained} grids ({GEOMETRIES[trained]}) but {data} is a {geometry} "
                f"grid ({GEOMETRIES[geometry]}): its coordinates, nested grids and resample reference differ, so its "
                f"scores would mix two geometries. Evaluate on {trained}-grid data (if the file's geometry is wrong, "
                "re-import it with mano-pde import --grid)"
            )
    return geometry


def _reference_grid_off(model: torch.nn.Module) -> bool:
    """Whether ``model`` has multipole mixers whose reference-grid mode is off (then ``ref-grid`` is scored)."""
    return getattr(model, "mixer", None) == "multipole" and getattr(model, "reference_grid", 0) is None


def _stats(values: torch.Tensor) -> dict[str, float]:
    """Mean, population standard deviation and median (the midpoint for an even count, as numpy)."""
    v = values.double().numpy()
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v))}


def _check_options(
    out: Path, n_test: int | None, batch_size: int, interpolation: str, resolutions, sample: int
) -> None:
    """Refuse bad options of :func:`evaluate` before any run is loaded or anything is written."""
    if n_test is not None and (isinstance(n_test, bool) or not isinstance(n_test, numbers.Integral) or n_test < 1):
        raise UserInputError(f"n_test (--n-test) must be >= 1 (or left out for the default), got {n_test!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise UserInputError(f"batch_size (--batch-size) must be >= 1, got {batch_size!r}")
    if interpolation not in ("bilinear", "bicubic"):
        raise UserInputError(f"interpolation must be 'bilinear' or 'bicubic', got {interpolation!r}")
    if not len(resolutions):
        raise UserInputError("give at least one test resolution")
    if isinstance(sample, bool) or not isinstance(sample, numbers.Integral) or sample < 0:
        raise UserInputError(f"sample must be an int >= 0, got {sample!r}")
    if n_test is not None and sample >= n_test:
        raise UserInputError(f"sample {sample} is not one of the {n_test} held-out samples; use sample < n_test")
    if out.exists() and not out.is_dir():
        raise UserInputError(f"the output {out} is an existing file, not a folder; choose another -o")
    folder = out.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserInputError(f"cannot write {out}: {folder} is a file, not a folder; choose another -o")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserInputError(
            f"cannot write {out}: the folder {folder} is not writable (permission denied); choose another -o"
        )


def _warn_zero_reference(u: torch.Tensor, idx: np.ndarray, data) -> None:
    """Warn (once per held-out set) about reference fields of zero norm: their relative errors are meaningless."""
    norms = u.reshape(u.shape[0], -1).double().norm(dim=1)
    zero = [int(idx[i]) for i in (norms == 0).nonzero().reshape(-1).tolist()]
    if zero:
        shown = ", ".join(map(str, zero[:10])) + (", ..." if len(zero) > 10 else "")
        log.warning(
            "%d of the %d held-out reference fields of %s have zero norm (u = 0 everywhere; samples %s): their "
            "relative errors divide by zero and are meaningless; use test data with non-zero pressure",
            len(zero),
            len(idx),
            data,
            shown,
        )


def evaluate(
    runs: list[str | os.PathLike],
    data: str | os.PathLike,
    resolutions: list[int],
    output: str | os.PathLike,
    *,
    n_test: int | None = None,
    batch_size: int = 16,
    device: str = "auto",
    interpolation: str = "bilinear",
    plots: bool = True,
    sample: int = 0,
    bf16: bool = False,
    compile: bool = False,
) -> list[dict[str, Any]]:
    """Score runs on ``data`` at each of ``resolutions``; write ``results.json``, ``results.md`` and plots.

    Parameters
    ----------
    runs : list of path-like
        Run directories of ``mano-pde train``.
    data : path-like
        Test data file; coarser grids are subsampled views of it.
    resolutions : list of int
        Test grids: integers of at least 3 points, reachable from the file (checked before anything is written).
    output : path-like
        Folder for the results.
    n_test : int, optional
        Number of held-out samples (see :func:`test_indices_for`).
    batch_size : int
        Inference batch size.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    interpolation : {"bilinear", "bicubic"}
        Interpolation of the resample reference.
    plots : bool
        Write PNG plots.
    sample : int
        Which held-out sample (position in the test set) the prediction plot shows.
    bf16 : bool
        Inference under bfloat16 autocast (fp32 weights; errors computed in fp32).
    compile : bool
        Inference through ``torch.compile`` (needs a C++ compiler on the CPU).

    Returns
    -------
    list of dict
        One record per run × test grid × method, with ``run`` (the run's folder name, or its shortest
        distinguishing path suffix when folder names collide, see :func:`run_labels`) and ``rel_l2_per_sample``
        (the relative L2 error of each held-out sample, samples ``test_indices[0] .. test_indices[1]`` in order).
    """
    from mano_pde.data.io import load_arrays
    from mano_pde.device import resolve_device
    from mano_pde.layers.grid_resample import resample_grid, subsample_grid
    from mano_pde.models import count_parameters
    from mano_pde.provenance import run_versions
    from mano_pde.training.runs import load_run

    from .report import plot_error_vs_resolution, plot_predictions, results_table

    out = Path(output)
    _check_options(out, n_test, batch_size, interpolation, resolutions, sample)
    resolutions = check_resolutions(data, resolutions)  # before anything is loaded or written
    dev = resolve_device(device)
    loaded = [load_run(r, dev) for r in runs]
    names = run_labels([run.path for run in loaded])  # seeded runs are all named seed<k>: unique labels
    geometry = check_geometry_matches(loaded, data)  # validate before writing
    test_indices = {name: test_indices_for(run, data, n_test) for name, run in zip(names, loaded, strict=True)}
    progress = {name: _epochs_done(run) for name, run in zip(names, loaded, strict=True)}
    for name, run in zip(names, loaded, strict=True):
        done, total = progress[name]
        if done < total:
            log.warning(
                "run %s stopped after epoch %d of %d: its scores are those of an unfinished model "
                "(finish it with `mano-pde train ... --resume -o %s`)",
                run.path,
                done,
                total,
                run.path,
            )
    out.mkdir(parents=True, exist_ok=True)
    # only temporaries of our own outputs: the folder may hold the user's other files
    remove_stale_temps(out, (*OUTPUT_FILES, COMPLETE_MARKER))
    # The outputs are one set: the marker of the previous set goes first and the new one is written last, so a
    # folder without results.complete.json holds an interrupted evaluation (each file is replaced atomically).
    (out / COMPLETE_MARKER).unlink(missing_ok=True)
    cache: dict[tuple, dict[str, torch.Tensor]] = {}

    def arrays(res: int, idx: np.ndarray) -> dict[str, torch.Tensor]:
        key = (res, idx.tobytes())
        if key not in cache:
            arr = load_arrays(data, res, idx)
            cache[key] = {k: torch.from_numpy(v).unsqueeze(1) for k, v in arr.items()}
        return cache[key]

    records: list[dict[str, Any]] = []
    examples: dict[str, dict] = {}
    warned: set[bytes] = set()
    for name, run in zip(names, loaded, strict=True):
        idx = test_indices[name]
        s_train = run.train_resolution
        n_params = count_parameters(run.model)
        for res in resolutions:
            test = arrays(res, idx)
            a, u = test["a"], test["u"]
            if idx.tobytes() not in warned:  # once per held-out set
                warned.add(idx.tobytes())
                _warn_zero_reference(u, idx, data)
            methods = {}
            kernels = {"bf16": bf16, "compile": compile}
            t0 = time.perf_counter()
            methods["direct"] = run.predict(a, batch_size, sample_ids=idx, **kernels)
            times = {"direct": (time.perf_counter() - t0) / len(idx)}
            if res > max(run.config.resolutions) and _reference_grid_off(run.model):
                finest = max(run.config.resolutions)
                run.model.set_reference_grid(finest)
                try:
                    t0 = time.perf_counter()
                    methods["ref-grid"] = run.predict(a, batch_size, sample_ids=idx, **kernels)
                    times["ref-grid"] = (time.perf_counter() - t0) / len(idx)
                finally:
                    run.model.set_reference_grid(None)
            if res > s_train and nesting(geometry, res, s_train) is not None:
                t0 = time.perf_counter()
                coarse = run.predict(subsample_grid(a, s_train, geometry), batch_size, sample_ids=idx, **kernels)
                methods["resample"] = resample_grid(coarse, res, geometry, interpolation)
                times["resample"] = (time.perf_counter() - t0) / len(idx)
            for method, pred in methods.items():
                l2 = per_sample_rel_l2(pred, u)
                h1 = _rel_h1(pred, u, res)
                st = _stats(l2)
                records.append(
                    {
                        "model": run.config.model,
                        "checkpoint": str(run.path),
                        "run": name,
                        "train_resolution": s_train,
                        "train_resolutions": list(run.config.resolutions),
                        "test_resolution": res,
                        "method": method,
                        "rel_l2_mean": st["mean"],
                        "rel_l2_std": st["std"],
                        "rel_l2_median": st["median"],
                        "rel_h1_mean": None if h1 is None else float(h1.double().mean()),
                        # one value per held-out sample, in the order of test_indices (paired comparisons)
                        "rel_l2_per_sample": [float(v) for v in l2.double().tolist()],
                        "n_test": len(idx),
                        "test_indices": [int(idx[0]), int(idx[-1])],
                        "inference_s_per_sample": times[method],
                        "precision": "bf16" if bf16 else "fp32",
                        "compiled": bool(compile),
                        "n_parameters": n_params,
                        "seed": run.config.seed,
                        "epochs_done": progress[name][0],
                        "epochs": progress[name][1],
                        "interpolation": interpolation if method == "resample" else None,
                    }
                )
                log.info("%s @%d %s: rel L2 %.4f", name, res, method, st["mean"])
            examples.setdefault(name, {})[res] = {m: p[sample, 0].numpy() for m, p in methods.items()}

    meta = {
        "data": str(data),
        "grid_geometry": geometry,
        "resolutions": resolutions,
        "command": " ".join(sys.argv),
        "bf16": bool(bf16),
        "compile": bool(compile),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": run_versions(dev),
        "runs": {n: {"config": r.config.to_dict(), "versions": r.versions} for n, r in zip(names, loaded, strict=True)},
    }
    written = ["results.json", "results.md"]
    atomic_write_text(out / "results.json", json.dumps({"meta": meta, "records": records}, indent=2) + "\n")
    atomic_write_text(out / "results.md", results_table(records) + "\n")
    if plots and records:
        plot_error_vs_resolution(records, out / "error_vs_resolution.png")
        idx0 = test_indices[names[0]]
        fields = {
            res: {"a": arrays(res, idx0)["a"][sample, 0].numpy(), "u": arrays(res, idx0)["u"][sample, 0].numpy()}
            for res in resolutions
        }
        trained = {n: r.train_resolution for n, r in zip(names, loaded, strict=True)}
        plot_predictions(fields, examples, out / "predictions.png", trained)
        written += ["error_vs_resolution.png", "predictions.png"]
    marker = {
        "complete": True,
        "date": meta["date"],
        "files": {name: sha256_file(out / name) for name in written},
        "unfinished_runs": sorted(name for name, (done, total) in progress.items() if done < total),
    }
    atomic_write_text(out / COMPLETE_MARKER, json.dumps(marker, indent=2) + "\n")
    return records


def _rel_h1(pred: torch.Tensor, u: torch.Tensor, res: int) -> torch.Tensor | None:
    """Relative H1 per sample, or ``None`` (with a warning) on a grid too small for it: the other metrics and the
    other grids of the evaluation are kept."""
    if res < H1_MIN_POINTS:
        log.warning(
            "the relative H1 error needs grids of at least %d points per direction: not reported on the %d-point "
            "grid (rel_h1_mean is null there)",
            H1_MIN_POINTS,
            res,
        )
        return None
    return per_sample_rel_h1(pred, u)


def _epochs_done(run) -> tuple[int, int]:
    """``(finished epochs, planned epochs)`` of a run: the epoch of its verified ``run.json`` (whose digests tie
    the weights to it); for runs written before run.json existed, the rows of ``log.csv``."""
    import csv

    if getattr(run, "epochs_done", None) is not None:
        return int(run.epochs_done), int(run.config.epochs)
    log_csv = Path(run.path) / "log.csv"
    done = 0
    if log_csv.is_file():
        with open(log_csv, newline="") as fh:
            done = sum(1 for _ in csv.DictReader(fh))
    return done, int(run.config.epochs)
