"""The ``train`` sub-command."""

from __future__ import annotations

import argparse

from . import CLIError

__all__ = ["add_train"]

_MODELS = ("mano", "fno", "tfno", "global-attention", "window-attention")


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
    from ..models.registry import parse_model_args
    from ..training import TrainConfig, train

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
    from ..training.distributed import is_main_process

    if is_main_process():  # under torchrun: once, from rank 0
        print(f"{out}\n{(out / 'log.csv').read_text().strip()}")
        if (out / "final_metrics.json").is_file():  # --n-val: the test score, computed once after the last epoch
            print((out / "final_metrics.json").read_text().strip())
    return 0
