"""The ``mano-pde`` command line: a thin layer over the Python API.

Sub-commands import their back ends lazily, so ``mano-pde generate`` never loads torch.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from .errors import UserInputError

__all__ = ["main", "build_parser", "USER_ERRORS"]

log = logging.getLogger("mano_pde")


class CLIError(UserInputError):
    """An error to report to the user in one line (exit status 2)."""


#: Exceptions that ``main`` reports as one line ``mano-pde COMMAND: error: MESSAGE`` with exit status 2.
#: Everything else is a bug (or an unexpected environment failure) and keeps its traceback.
#:
#: - ``UserInputError`` (with ``CLIError`` and ``mano_pde.data.DarcyDataError``): raised by the package's
#:   boundary checks, with a message naming the problem and the fix.
#: - ``FileNotFoundError`` / ``FileExistsError``: the package raises them, with such messages, for paths the
#:   user gave (a missing data file or run, an existing output without ``--overwrite``).
#: - ``PermissionError``: the operating system refused a path the user gave (e.g. a read-only output
#:   folder); its message names the path, and no traceback would help.
#:
#: Plain ``ValueError``/``TypeError`` are deliberately not listed: they hide internal bugs as "user errors".
USER_ERRORS: tuple[type[BaseException], ...] = (UserInputError, FileNotFoundError, FileExistsError, PermissionError)


# --------------------------------------------------------------------------------------------- generate
def _add_generate(sub: argparse._SubParsersAction) -> None:
    from .data.presets import DEFAULT_PRESET, PRESETS

    p = sub.add_parser(
        "generate",
        help="generate a Darcy dataset (netCDF4)",
        description="Solve -div(a grad u) = f on (0,1)^2, u = 0 on the boundary, for random permeabilities a. "
        "Resumable: rerun the same command after an interruption. Presets: "
        + "; ".join(f"{k}: {v.n_samples} samples at {v.resolution}^2" for k, v in PRESETS.items()),
    )
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"named preset (default {DEFAULT_PRESET})")
    p.add_argument("--n-samples", type=int, help="number of samples")
    p.add_argument("--resolution", type=int, help="grid points per direction, boundary included")
    p.add_argument("--seed", type=int, help="root seed (sample i depends only on seed and i)")
    p.add_argument("--alpha", type=float, help="GRF smoothness alpha")
    p.add_argument("--tau", type=float, help="GRF inverse length scale tau")
    p.add_argument("--map", dest="permeability_map", choices=("piecewise", "lognormal"), help="permeability map")
    p.add_argument("--high", type=float, help="piecewise map: value where the field >= 0")
    p.add_argument("--low", type=float, help="piecewise map: value where the field < 0")
    p.add_argument("--sigma", type=float, help="lognormal map: a = exp(sigma * field)")
    p.add_argument("--forcing", type=float, help="constant right-hand side f")
    p.add_argument("--face", dest="face_average", choices=("harmonic", "arithmetic"), help="face averaging")
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
    from .data import describe, generate_darcy, get_preset, open_darcy

    if args.scheduler is not None or args.dask_workers is not None:
        from .data.dask_backend import require_distributed

        try:
            require_distributed()
        except ImportError as exc:
            raise CLIError(str(exc)) from None

    config = get_preset(args.preset).replace(
        n_samples=args.n_samples,
        resolution=args.resolution,
        seed=args.seed,
        alpha=args.alpha,
        tau=args.tau,
        permeability_map=args.permeability_map,
        high=args.high,
        low=args.low,
        sigma=args.sigma,
        forcing=args.forcing,
        face_average=args.face_average,
    )
    from .data.dask_backend import DaskGenerationError

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


# --------------------------------------------------------------------------------------------- info
def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="summarise a Darcy file",
        description="Dims, reachable resolutions, parameters and value ranges of a Darcy data file.",
    )
    p.add_argument("file")
    p.add_argument("--resolution", type=int, help="summarise the view at this (reachable) resolution")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args: argparse.Namespace) -> int:
    from .data import describe, open_darcy

    with open_darcy(args.file, args.resolution) as ds:
        print(describe(ds))
    return 0


# --------------------------------------------------------------------------------------------- import
def _add_import(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    from .data import describe, open_darcy
    from .data.importers import import_darcy

    path = import_darcy(
        args.src,
        args.output,
        dtype=args.dtype,
        overwrite=args.overwrite,
        high=args.high,
        low=args.low,
        progress=not args.no_progress,
    )
    with open_darcy(path) as ds:
        print(f"{path}\n{describe(ds)}")
    return 0


# --------------------------------------------------------------------------------------------- train
_MODELS = ("mano", "fno", "tfno", "global-attention", "window-attention")


def _model_arg(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as strings; the value is converted with the model's annotated type in ``_cmd_train``."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), value


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a surrogate on a Darcy file",
        description="Train on the first --n-train samples at one or more grids (several --resolution values: "
        "multi-resolution training); the last --n-test samples are held out and scored every epoch (with --n-val: "
        "the validation samples are, and the test samples are scored once at the end). "
        "Data-parallel (DDP) when launched by torchrun: torchrun --nproc_per_node=N -m mano_pde.cli train ... "
        "(--batch-size is then the global batch, a multiple of N).",
    )
    p.add_argument("--model", required=True, choices=_MODELS)
    p.add_argument("--data", required=True, help="training data file")
    p.add_argument(
        "--resolution",
        type=int,
        action="append",
        required=True,
        help="training grid; repeat for multi-resolution training",
    )
    p.add_argument(
        "--n-train", type=int, nargs="+", required=True, help="training samples (one value, or one per --resolution)"
    )
    p.add_argument("--n-test", type=int, default=32, help="held-out samples (the file's last; default 32)")
    p.add_argument("--test-data", help="separate held-out data file")
    p.add_argument(
        "--n-val",
        type=int,
        default=0,
        help="validation samples held out from the training file (the N right after the training block) for the "
        "per-epoch log and model selection; the test file is then scored only at the end (final_metrics.json). "
        "Default 0: no validation split, the test error is logged every epoch",
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8, help="global batch size (split across torchrun processes)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--scheduler", choices=("cosine", "step", "none"), default="cosine")
    p.add_argument("--step-size", type=int, default=100, help="step scheduler: epochs per decay")
    p.add_argument("--gamma", type=float, default=0.5, help="step scheduler: decay factor")
    p.add_argument("--loss", choices=("l2", "h1"), default="l2", help="relative L2 (LpLoss) or H1 (H1Loss)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA only)")
    g = p.add_argument_group("model hyperparameters (defaults: the model's own)")
    g.add_argument("--hidden-channels", type=int)
    g.add_argument("--n-layers", type=int)
    g.add_argument("--n-heads", type=int, help="attention models")
    g.add_argument("--window-size", type=int, help="attention models")
    g.add_argument("--n-modes", type=int, help="Fourier models: modes per direction (neuralop counting)")
    g.add_argument(
        "--model-arg",
        type=_model_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other constructor keyword, e.g. --model-arg downsample=avg; VALUE is parsed with the keyword's "
        "annotated type (bool: true/false/1/0/yes/no; none where allowed; lists as 16,16)",
    )
    p.add_argument("-o", "--output", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in -o")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from .models.registry import parse_model_args
    from .training import TrainConfig, train

    kwargs: dict[str, object] = {}
    for key in ("hidden_channels", "n_layers", "n_heads", "window_size"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    if args.n_modes is not None:
        kwargs["n_modes"] = [args.n_modes, args.n_modes]
    extra = parse_model_args(args.model, args.model_arg)  # typed by the constructor's annotations
    both = sorted(set(kwargs) & set(extra))
    if both:
        raise CLIError(
            "given twice, as an option and as --model-arg: "
            + ", ".join(f"--{k.replace('_', '-')} {kwargs[k]} and --model-arg {k}={extra[k]}" for k in both)
            + "; keep one"
        )
    kwargs.update(extra)
    config = TrainConfig(
        model=args.model,
        data=args.data,
        resolutions=args.resolution,
        n_train=args.n_train,
        n_test=args.n_test,
        n_val=args.n_val,
        test_data=args.test_data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        scheduler=args.scheduler,
        step_size=args.step_size,
        gamma=args.gamma,
        loss=args.loss,
        seed=args.seed,
        device=args.device,
        amp_bf16=args.bf16,
        model_kwargs=kwargs,
    )
    out = train(config, args.output, resume=args.resume, progress=not args.no_progress)
    from .training.distributed import is_main_process

    if is_main_process():  # under torchrun: once, from rank 0
        print(f"{out}\n{(out / 'log.csv').read_text().strip()}")
        if (out / "final_metrics.json").is_file():  # --n-val: the test score, computed once after the last epoch
            print((out / "final_metrics.json").read_text().strip())
    return 0


# --------------------------------------------------------------------------------------------- evaluate
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score runs on the training grid and on finer grids (zero-shot), beside the resample reference",
        description="Writes OUT/results.json, OUT/results.md and PNG plots.",
    )
    p.add_argument("runs", nargs="+", help="run directories of `mano-pde train`")
    p.add_argument("--data", required=True, help="test data file")
    p.add_argument("--resolutions", type=int, nargs="+", required=True, help="test grids")
    p.add_argument(
        "--n-test", type=int, help="held-out samples (default: the run's n_test, or all of an independent file)"
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--interpolation",
        choices=("bilinear", "bicubic"),
        default="bilinear",
        help="interpolation of the resample reference",
    )
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("-o", "--output", required=True, help="results folder")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .evaluation import evaluate

    evaluate(
        args.runs,
        args.data,
        args.resolutions,
        args.output,
        n_test=args.n_test,
        batch_size=args.batch_size,
        device=args.device,
        interpolation=args.interpolation,
        plots=not args.no_plots,
    )
    print((Path(args.output) / "results.md").read_text())
    return 0


# --------------------------------------------------------------------------------------------- demo
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole story in one command: data, MANO and FNO training, zero-shot table (CPU, minutes)",
        description="Generates a small Darcy dataset, trains MANO and FNO briefly on a coarse grid and "
        "prints the zero-shot resolution-transfer table beside the resample reference.",
    )
    p.add_argument("-o", "--output", default="runs/demo", help="folder for data, runs and results")
    p.add_argument("--epochs", type=int, help="training epochs per model")
    p.add_argument("--workers", type=int, default=2, help="data-generation processes")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    table = run_demo(
        args.output, epochs=args.epochs, workers=args.workers, device=args.device, progress=not args.no_progress
    )
    print(table)
    return 0


# --------------------------------------------------------------------------------------------- benchmark
def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help="speed and memory benchmarks (results for BENCHMARKS.md)")
    bsub = p.add_subparsers(dest="benchmark", required=True, metavar="{generate,scaling,darcy,crash-sweep}")
    for name, module, help_ in (
        ("generate", "mano_pde.benchmarks.generate", "Darcy data pipeline vs bare scipy solves"),
        ("scaling", "mano_pde.benchmarks.scaling", "time and peak memory of MANO, attention and FNO vs grid"),
        ("darcy", "mano_pde.benchmarks.darcy", "the Darcy accuracy study: all models, zero-shot vs resample"),
        ("crash-sweep", "mano_pde.benchmarks.crash_sweep", "kill commands at random instants, rerun, verify"),
    ):
        bp = bsub.add_parser(name, help=help_, description=help_)
        _lazy_module_args(bp, module)


def _lazy_module_args(parser: argparse.ArgumentParser, module: str) -> None:
    """Let a benchmark module declare its own options (``add_arguments``) and run (``run``)."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:  # e.g. an optional dependency missing: fail when used, not for every command
        error = str(exc)

        def unavailable(args: argparse.Namespace) -> int:
            raise CLIError(f"{module} cannot be imported: {error}")

        parser.set_defaults(func=unavailable)
        return
    mod.add_arguments(parser)
    parser.set_defaults(func=mod.run)


# --------------------------------------------------------------------------------------------- main
_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_demo,
    _add_generate,
    _add_info,
    _add_import,
    _add_train,
    _add_evaluate,
    _add_benchmark,
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="mano-pde",
        description="Neural-operator surrogates of PDEs: Darcy data, MANO and zero-shot resolution transfer.",
    )
    parser.add_argument("--version", action="version", version=f"mano-pde {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mano-pde`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose + 1, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    from .process import configure_allocator  # start-up malloc settings (mano_pde.process; MANO_PDE_ALLOCATOR)

    configure_allocator()
    previous = _handle_sigterm()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        if args.command == "train":
            again = "rerun the same command with --resume to continue the run"
        elif getattr(args, "overwrite", False):
            again = "rerun the same command without --overwrite to resume"
        else:
            again = "rerun the same command to resume"
        print(f"{'terminated' if isinstance(exc, Terminated) else 'interrupted'}: {again}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except USER_ERRORS as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message
        print(f"mano-pde {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """``SIGTERM`` received: raised like Ctrl-C so that every clean-up (temporary files, locks) runs."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def _handle_sigterm():
    """Turn ``SIGTERM`` into :class:`Terminated` while a command runs; returns the handler to restore."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):  # someone else (e.g. torchrun, a test runner) handles it
        return None
    signal.signal(signal.SIGTERM, _on_sigterm)
    return previous


if __name__ == "__main__":
    sys.exit(main())
