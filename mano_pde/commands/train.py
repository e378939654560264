"""The ``train`` sub-command: its options are the fields of :class:`~mano_pde.training.config.TrainConfig`.

Each configuration field is one option (:mod:`mano_pde.commands.options`: name, type, default, help and
choices from the field), so a field added to ``TrainConfig`` is an option of ``mano-pde train`` without
code here; the model names are those of the torch-free :mod:`mano_pde.model_catalogue`. The model's
constructor keywords (``TrainConfig.model_kwargs``) come from the shortcuts below and ``--model-arg``.
"""

from __future__ import annotations

import argparse

from ..model_catalogue import MODELS
from ..training.config import TrainConfig
from . import CLIError
from .options import add_field_options, field_values

__all__ = ["add_train"]

#: Set from the model options below, not from an option of its own.
_SKIP = ("model_kwargs",)

#: Shortcut options for common model keywords: keyword -> help (an int each; ``n_modes`` is given once and
#: used for both directions).
_MODEL_OPTIONS = {
    "hidden_channels": "width",
    "n_layers": "blocks / Fourier layers",
    "n_heads": "attention models",
    "window_size": "attention models",
    "n_modes": "Fourier models: modes per direction (neuralop counting)",
}


def _model_arg(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as strings; the value is converted with the model's annotated type in ``_cmd_train``."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), value


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a surrogate on a Darcy file",
        description="Train on the first --n-train samples at one or more grids (several --resolution values: "
        "multi-resolution training); the last --n-test samples are held out and scored every epoch (with --n-val: "
        "the validation samples are, and the test samples are scored once at the end). "
        "Data-parallel (DDP) when launched by torchrun: torchrun --nproc_per_node=N -m mano_pde.cli train ... "
        "(--batch-size is then the global batch, a multiple of N).",
        epilog="models: " + "; ".join(f"{name}: {text}" for name, text in MODELS.items()),
    )
    add_field_options(p, TrainConfig, skip=_SKIP)
    g = p.add_argument_group("model hyperparameters (defaults: the model's own)")
    for key, help_ in _MODEL_OPTIONS.items():
        g.add_argument("--" + key.replace("_", "-"), type=int, help=help_)
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


def _model_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """The model's constructor keywords from the shortcut options and ``--model-arg`` (each keyword once)."""
    from ..models.registry import parse_model_args

    kwargs: dict[str, object] = {}
    for key in _MODEL_OPTIONS:
        value = getattr(args, key)
        if value is not None:
            kwargs[key] = [value, value] if key == "n_modes" else value
    extra = parse_model_args(args.model, args.model_arg)  # typed by the constructor's annotations
    both = sorted(set(kwargs) & set(extra))
    if both:
        raise CLIError(
            "given twice, as an option and as --model-arg: "
            + ", ".join(f"--{k.replace('_', '-')} {args.__dict__[k]} and --model-arg {k}={extra[k]}" for k in both)
            + "; keep one"
        )
    return {**kwargs, **extra}


def _cmd_train(args: argparse.Namespace) -> int:
    from ..training import train
    from ..training.distributed import is_main_process

    config = TrainConfig(**field_values(TrainConfig, args, skip=_SKIP), model_kwargs=_model_kwargs(args))
    out = train(config, args.output, resume=args.resume, progress=not args.no_progress)
    if is_main_process():  # under torchrun: once, from rank 0
        print(f"{out}\n{(out / 'log.csv').read_text().strip()}")
        if (out / "final_metrics.json").is_file():  # --n-val: the test score, computed once after the last epoch
            print((out / "final_metrics.json").read_text().strip())
    return 0
