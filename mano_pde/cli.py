"""The ``mano-pde`` command line: a thin layer over the Python API.

This module assembles the parser (the data and training sub-commands live in :mod:`mano_pde.commands`),
runs a command and reports user errors in one line. Sub-commands import their back ends lazily, so
``mano-pde generate`` never loads torch and ``mano-pde --help`` loads neither torch nor xarray.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from .commands import CLIError
from .commands.data import add_generate, add_import, add_info
from .commands.train import add_train
from .errors import UserInputError

__all__ = ["CLIError", "USER_ERRORS", "build_parser", "main"]

log = logging.getLogger("mano_pde")

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
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast inference (fp32 weights and errors)")
    p.add_argument("--compile", action="store_true", help="torch.compile the models (needs a C++ compiler on the CPU)")
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
        bf16=args.bf16,
        compile=args.compile,
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
    bsub = p.add_subparsers(
        dest="benchmark", required=True, metavar="{generate,scaling,darcy,crash-sweep,hostile-inputs,settings}"
    )
    for name, module, help_ in (
        ("generate", "mano_pde.benchmarks.generate", "Darcy data pipeline vs bare scipy solves"),
        ("scaling", "mano_pde.benchmarks.scaling", "time and peak memory of MANO, attention and FNO vs grid"),
        ("darcy", "mano_pde.benchmarks.darcy", "the Darcy accuracy study: all models, zero-shot vs resample"),
        ("crash-sweep", "mano_pde.benchmarks.crash_sweep", "kill commands at random instants, rerun, verify"),
        (
            "hostile-inputs",
            "mano_pde.benchmarks.hostile_inputs",
            "run every hostile input of the catalogue, judge each outcome strictly",
        ),
        ("settings", "mano_pde.benchmarks.settings", "process start-up settings vs a plain process, every model"),
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
    add_generate,
    add_info,
    add_import,
    add_train,
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
    from .process import configure_process  # start-up malloc and OpenMP settings (mano_pde.process)

    configure_process()
    previous = _handle_sigterm()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        if args.command == "train":
            again = "rerun the same command with --resume to continue the run"
        else:  # a command may know better (e.g. generate: its output may already be complete)
            again = getattr(args, "interrupted_advice", lambda: None)() or "rerun the same command to resume"
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
