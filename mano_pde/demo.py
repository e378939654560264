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

import dataclasses
import logging
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .experiments import ExperimentSpec

__all__ = ["DemoConfig", "demo_spec", "run_demo"]

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


def demo_spec(cfg: DemoConfig) -> ExperimentSpec:
    """The demo as an experiment spec: one data file, one arm (``runs/<model>``, results in ``results/``)."""
    from .experiments import ArmSpec, DataSpec, EvalSpec, ExperimentSpec, ModelSpec

    return ExperimentSpec(
        name="demo",
        description="mano-pde demo: MANO and FNO trained on a coarse grid, scored on finer grids",
        data={
            "data": DataSpec(
                path=f"darcy_{cfg.data_resolution}.nc",
                generate={"n_samples": cfg.n_train + cfg.n_test, "resolution": cfg.data_resolution, "seed": cfg.seed},
            )
        },
        train={
            "data": "data",
            "resolutions": [cfg.train_resolution],
            "n_train": [cfg.n_train],
            "n_test": cfg.n_test,
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "seed": cfg.seed,
        },
        models={name: ModelSpec(name, dict(kwargs)) for name, kwargs in cfg.models.items()},
        arms={
            "demo": ArmSpec(
                models=list(cfg.models),
                run_dir="runs/{model}",
                evaluate=EvalSpec(
                    data="data", resolutions=list(cfg.test_resolutions), n_test=cfg.n_test, output="results"
                ),
            )
        },
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

    The demo is an experiment spec (:func:`demo_spec`) run by :func:`mano_pde.experiments.run_experiment`: a
    finished run is reused only if it was trained with this very configuration (else the error names the
    differences: pass another ``output``); an interrupted one resumes.

    Parameters
    ----------
    output : path-like
        Folder for ``darcy_<s>.nc``, ``runs/<model>``, ``results/`` and ``experiment.json``.
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
    from .evaluation.report import results_table
    from .experiments import run_experiment
    from .training.config import check_epochs

    cfg = config or DemoConfig()
    if epochs is not None:
        check_epochs(int(epochs) if isinstance(epochs, numbers.Integral) and not isinstance(epochs, bool) else epochs)
        cfg = dataclasses.replace(cfg, epochs=int(epochs))
    summary = run_experiment(demo_spec(cfg), output, workers=workers, device=device, progress=progress)
    table = results_table(summary["records"])
    return f"{table}\n\nresults, plots and run directories: {Path(output).resolve()}"
