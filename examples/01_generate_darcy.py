"""Generate a Darcy dataset and look at it at several resolutions.

Runs in about a minute on 2 CPU cores with its defaults:

    python examples/01_generate_darcy.py                 # 192 samples at 129², into datasets/
    python examples/01_generate_darcy.py --resolution 257 --n-samples 256 --workers 2

Full scale (the FNO paper's benchmark: 1024 samples at 421², α = 2, τ = 3, a ∈ {12, 3}, f = 1; the
measured wall time and file size are in BENCHMARKS.md):

    mano-pde generate --preset fno-darcy --workers 2 -o datasets/fno_darcy_421.nc

The same file then serves 211², 141², 106², 85², ... by subsampling (``open_darcy(path, resolution=85)``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from mano_pde.data import DarcyConfig, describe, generate_darcy, open_darcy, reachable_resolutions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=129)
    parser.add_argument("--n-samples", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("-o", "--output", default=None, help="default: datasets/darcy_<s>.nc")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    out = Path(args.output or f"datasets/darcy_{args.resolution}.nc")
    config = DarcyConfig(n_samples=args.n_samples, resolution=args.resolution, seed=args.seed)
    if out.exists():
        print(f"{out} exists; reusing it")
    else:
        generate_darcy(config, out, workers=args.workers)  # resumable: rerun after an interruption

    with open_darcy(out) as ds:
        print(describe(ds))
    # Coarser grids are lazy views of the same file (the FNO convention s_c = (s - 1)/r + 1).
    for s in reachable_resolutions(args.resolution)[:4]:
        with open_darcy(out, resolution=s) as view:
            u = view["u"].isel(sample=0).values
            print(f"{s:4d}²: u(sample 0) max {u.max():.5f}, mean {u.mean():.5f}")
    # The maximum of u is resolution-independent up to discretisation error: a quick sanity check.
    with open_darcy(out) as ds:
        u_max = float(np.max(ds["u"].isel(sample=0).values))
    print(f"max u of sample 0 at the native grid: {u_max:.5f}")


if __name__ == "__main__":
    main()
