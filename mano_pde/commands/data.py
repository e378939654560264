"""The data sub-commands: ``generate`` (solve Darcy problems), ``info`` (summarise a file) and ``import``."""

from __future__ import annotations

import argparse

from . import CLIError
from .options import add_field_options, field_values

__all__ = ["add_generate", "add_import", "add_info"]


def add_generate(sub: argparse._SubParsersAction) -> None:
    from ..data.presets import DEFAULT_PRESET, PRESETS, DarcyConfig

    p = sub.add_parser(
        "generate",
        help="generate a Darcy dataset (netCDF4)",
        description="Solve -div(a grad u) = f on (0,1)^2, u = 0 on the boundary, for random permeabilities a. "
        "Resumable: rerun the same command after an interruption. Presets: "
        + "; ".join(f"{k}: {v.n_samples} samples at {v.resolution}^2" for k, v in PRESETS.items()),
    )
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"named preset (default {DEFAULT_PRESET})")
    g = p.add_argument_group("generator parameters (defaults: the preset's)")
    add_field_options(g, DarcyConfig, defaults=False)
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="compute on an existing dask.distributed cluster, e.g. tcp://host:8786 (needs mano-pde[dist]); "
        "same file as with --workers",
    )
    p.add_argument(
        "--dask-workers",
        type=int,
        metavar="N",
        help="compute on a local dask.distributed cluster of N worker processes (needs mano-pde[dist])",
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="storage precision")
    p.add_argument("--chunk-size", type=int, help="samples per resumable chunk")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output / unfinished run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", required=True, help="output .nc file")
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from ..data import describe, generate_darcy, get_preset, open_darcy
    from ..data.presets import DarcyConfig

    if args.scheduler is not None or args.dask_workers is not None:
        from ..data.dask_backend import require_distributed

        try:
            require_distributed()
        except ImportError as exc:
            raise CLIError(str(exc)) from None

    config = get_preset(args.preset).replace(**field_values(DarcyConfig, args))
    from ..data.dask_backend import DaskGenerationError

    args.interrupted_advice = lambda: _generate_advice(config, args.output, args.dtype)

    try:
        path = generate_darcy(
            config,
            args.output,
            workers=args.workers,
            dtype=args.dtype,
            chunk_size=args.chunk_size,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            scheduler=args.scheduler,
            dask_workers=args.dask_workers,
        )
    except DaskGenerationError as exc:
        raise CLIError(str(exc)) from None
    with open_darcy(path) as ds:
        print(f"{path}\n{describe(ds)}")
    return 0


def _generate_advice(config, output: str, dtype: str) -> str:
    """What to tell a user who interrupted ``generate``: nothing to rerun if the output is already complete.

    Complete means: the file holds exactly this command's data and no clean-up is left (no ``.parts``, no
    renamed shard folder). Otherwise rerunning the same command (with ``--overwrite`` too: the saved shards of
    the same parameters are kept) resumes or finishes the run.
    """
    from pathlib import Path

    from ..data.generate import _holds
    from ..files import stale_temps

    again = "rerun the same command to resume"
    try:
        path = Path(output)
        parts = path.with_name(path.name + ".parts")
        left = parts.exists() or stale_temps(path.parent, (parts.name,), own=True)
        if path.is_file() and not left and _holds(path, config, dtype):
            return f"{path} was already complete; nothing to rerun"
    except Exception:  # noqa: BLE001 - an unusual output path: the general advice holds
        return again
    return again


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="summarise a Darcy file",
        description="Dims, reachable resolutions, parameters and value ranges of a Darcy data file.",
    )
    p.add_argument("file")
    p.add_argument("--resolution", type=int, help="summarise the view at this (reachable) resolution")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args: argparse.Namespace) -> int:
    from ..data import describe, open_darcy

    with open_darcy(args.file, args.resolution) as ds:
        print(describe(ds))
    return 0


def add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="convert third-party Darcy data to the mano_pde schema",
        description="Reads FNO-paper .mat files (MATLAB v5 or v7.3), neuraloperator darcy_*.pt files and "
        "PDEBench 2D_DarcyFlow_*.hdf5 files.",
    )
    p.add_argument("src")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--high", type=float, default=12.0, help="value for True in boolean permeability masks")
    p.add_argument("--low", type=float, default=3.0, help="value for False in boolean permeability masks")
    p.add_argument(
        "--grid",
        choices=("auto", "node", "half-open", "cell"),
        default="auto",
        help="grid geometry: node x_i = i/(s-1), half-open x_i = i/s (neuraloperator's .pt files), cell "
        "x_i = (i+1/2)/s; auto (default): from the source's coordinates, else decided from u (zero edges, symmetry)",
    )
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    from ..data import describe, open_darcy
    from ..data.importers import import_darcy

    path = import_darcy(
        args.src,
        args.output,
        dtype=args.dtype,
        overwrite=args.overwrite,
        high=args.high,
        low=args.low,
        progress=not args.no_progress,
        grid=args.grid,
    )
    with open_darcy(path) as ds:
        geometry, confidence = ds.attrs["grid_geometry"], ds.attrs.get("grid_confidence", "")
        print(f"{path}\ngrid: {geometry} ({confidence}): {ds.attrs.get('grid_detection', '')}\n{describe(ds)}")
    return 0
