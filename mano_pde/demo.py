"""``mano-pde demo``: the package's main job at laptop scale.

Generates a small Darcy dataset on a fine grid, trains MANO and FNO on a coarse subsampled grid, and
evaluates both on the training grid and on 2× and 4× finer grids, beside the resample reference
(run on the training grid, interpolate). Everything lands in one folder; rerunning the command reuses
finished steps (the data file, finished training runs) and resumes interrupted ones.

The defaults are sized for 2 CPU cores and about ten minutes; they are far from the FNO paper's protocol
(1000 training samples of 421² data subsampled to 85², 500 epochs), which needs a GPU — see
``examples/03_zero_shot_resolution.py`` for the full-scale settings.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserInputError

__all__ = ["DemoConfig", "run_demo"]

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """Sizes of the demo (defaults: about ten minutes on 2 CPU cores)."""

    data_resolution: int = 129
    train_resolution: int = 33
    test_resolutions: tuple[int, ...] = (33, 65, 129)
    n_train: int = 160
    n_test: int = 32
    epochs: int = 30
    batch_size: int = 4
    lr: float = 2e-3
    seed: int = 0
    #: MANO as in the Darcy study (MLP ratio 4, relative-position bias; BENCHMARKS.md, "MANO tuning").
    models: dict[str, dict] = field(
        default_factory=lambda: {
            "mano": {
                "hidden_channels": 32,
                "n_layers": 4,
                "window_size": 8,
                "n_heads": 4,
                "mlp_ratio": 4.0,
                "position_bias": True,
            },
            "fno": {},
        }
    )


def run_demo(
    output: str | Path,
    *,
    epochs: int | None = None,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
    config: DemoConfig | None = None,
) -> str:
    """Run the demo and return the zero-shot results table (markdown).

    Parameters
    ----------
    output : path-like
        Folder for ``darcy_<s>.nc``, ``runs/<model>`` and ``results/``.
    epochs : int, optional
        Override the training epochs.
    workers : int
        Data-generation processes.
    device : str
        Training/inference device (``auto`` picks CUDA when present).
    progress : bool
        Progress bars.
    config : DemoConfig, optional
        Full control over the sizes.
    """
    from .data import DarcyConfig, generate_darcy
    from .device import resolve_device
    from .evaluation import evaluate
    from .evaluation.report import results_table
    from .training import TrainConfig, train
    from .training.runs import is_run_dir

    cfg = config or DemoConfig()
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
            raise UserInputError(f"epochs (--epochs) must be an int >= 1, got {epochs!r}")
        cfg.epochs = int(epochs)
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise UserInputError(f"workers (--workers) must be an int >= 1, got {workers!r}")
    resolve_device(device)  # an unknown or unavailable device fails now, not after the data are generated
    out = Path(output)
    data = out / f"darcy_{cfg.data_resolution}.nc"
    # every training configuration is built (and so validated) before anything is generated
    configs = {
        name: TrainConfig(
            model=name,
            data=str(data),
            resolutions=[cfg.train_resolution],
            n_train=[cfg.n_train],
            n_test=cfg.n_test,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=cfg.seed,
            device=device,
            model_kwargs=dict(kwargs),
        )
        for name, kwargs in cfg.models.items()
    }
    out.mkdir(parents=True, exist_ok=True)
    if not data.exists():
        log.info("generating %s", data)
        generate_darcy(
            DarcyConfig(n_samples=cfg.n_train + cfg.n_test, resolution=cfg.data_resolution, seed=cfg.seed),
            data,
            workers=workers,
            progress=progress,
        )
    runs = []
    for name, tc in configs.items():
        run_dir = out / "runs" / name
        state = run_dir / "train_state.pt"
        if is_run_dir(run_dir) and state.exists() and _finished(run_dir, cfg.epochs):
            log.info("reusing finished run %s", run_dir)
        else:
            train(tc, run_dir, resume=(run_dir / "config.json").exists(), progress=progress)
        runs.append(run_dir)
    records = evaluate(runs, data, list(cfg.test_resolutions), out / "results", device=device, n_test=cfg.n_test)
    table = results_table(records)
    return f"{table}\n\nresults, plots and run directories: {out.resolve()}"


def _finished(run_dir: Path, epochs: int) -> bool:
    """Whether the run's verified resume state has all ``epochs`` (a damaged state: not finished, resume it)."""
    from .errors import UserInputError
    from .training.state import load_train_state

    try:
        state = load_train_state(run_dir, map_location="cpu", warn=False)
    except (UserInputError, FileNotFoundError):
        return False
    return int(state["epoch"]) >= epochs
