"""Train MANO and FNO on a coarse grid of a Darcy file (the Python API behind ``mano-pde train``).

Defaults run on 2 CPU cores in a few minutes (example 01's file, 160 training samples at 33², 20 epochs):

    python examples/01_generate_darcy.py
    python examples/02_train.py                      # -> runs/mano_33, runs/fno_33

Interrupted? Rerun the same command: unfinished runs resume from their last completed epoch.

Full scale (the FNO paper's protocol; needs a GPU): 1000 training and 200 test samples of the 421² preset,
trained at 85² (every 5th point), 500 epochs, batch 20, Adam lr 1e-3 with step decay:

    mano-pde generate --preset fno-darcy --workers 8 -o datasets/fno_darcy_421.nc
    mano-pde generate --preset fno-darcy --n-samples 200 --seed 1 --workers 8 -o datasets/fno_darcy_421_test.nc
    mano-pde train --model fno --data datasets/fno_darcy_421.nc --test-data datasets/fno_darcy_421_test.nc \\
        --resolution 85 --n-train 1000 --n-test 200 --epochs 500 --batch-size 20 --scheduler step \\
        --step-size 100 --gamma 0.5 -o runs/fno_85
    mano-pde train --model mano ... -o runs/mano_85      # same settings
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mano_pde.training import TrainConfig, train

MODELS = {
    "mano": {"hidden_channels": 32, "n_layers": 4, "window_size": 8, "n_heads": 4},
    "fno": {},  # neuralop FNO with the FNO paper's Darcy preset (width 32, 12 modes, 4 layers)
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="datasets/darcy_129.nc", help="made by examples/01_generate_darcy.py")
    parser.add_argument("--resolution", type=int, default=33)
    parser.add_argument("--n-train", type=int, default=160)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument(
        "--n-val",
        type=int,
        default=0,
        help="validation samples after the training block (per-epoch log); the test samples are then scored once",
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--runs", default="runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    for name in args.models:
        out = Path(args.runs) / f"{name}_{args.resolution}"
        config = TrainConfig(
            model=name,
            data=args.data,
            resolutions=[args.resolution],
            n_train=[args.n_train],
            n_test=args.n_test,
            n_val=args.n_val,
            epochs=args.epochs,
            batch_size=8,
            lr=2e-3,
            model_kwargs=MODELS[name],
        )
        train(config, out, resume=(out / "config.json").exists())
        print(f"{name}: {out}\n{(out / 'log.csv').read_text()}")


if __name__ == "__main__":
    main()
