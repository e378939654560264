"""Benchmark of the Darcy data pipeline against bare scipy solves of the same matrices.

``mano-pde benchmark generate`` measures, per grid size, the wall time per sample of the full pipeline
(:func:`mano_pde.data.generate_darcy` with one worker: random field, permeability map, assembly, SuperLU
factorisation and solve, shard and netCDF writing) and of a bare ``scipy.sparse.linalg.splu(A).solve(b)`` of
the very same matrices, in the same process. ``--orderings`` also times SuperLU's column orderings (the
evidence behind :data:`solvers.DEFAULT_PERMC_SPEC`), and ``--preset-run NAME`` times a whole preset with
``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from mano_pde.errors import UserInputError
from mano_pde.files import atomic_write_text

__all__ = ["add_arguments", "run", "benchmark_pipeline", "benchmark_orderings", "benchmark_preset"]

log = logging.getLogger(__name__)

_DEFAULT_SIZES = (65, 129, 257, 421)


def _n_for(s: int, budget_s: float) -> int:
    """Samples to time at size ``s`` so that each size takes roughly ``budget_s`` seconds."""
    per_sample = 0.7 * (s / 421.0) ** 2.6 + 2e-3  # rough fit of SuperLU times on this class of machine
    return int(max(3, min(400, budget_s / per_sample)))


def benchmark_pipeline(
    sizes: tuple[int, ...] = _DEFAULT_SIZES, budget_s: float = 10.0, repeats: int = 3, seed: int = 0
) -> list[dict]:
    """Per-sample wall time of the generation pipeline and of bare solves, per grid size.

    Pipeline and bare runs alternate ``repeats`` times on the same samples and the fastest of each is kept,
    so that load from other processes affects both alike and the ratio stays meaningful.
    """
    import numpy as np
    import scipy.sparse.linalg as spla

    from mano_pde.data import DarcyConfig, generate_darcy, generate_sample
    from mano_pde.data.generate import sample_rng
    from solvers import DEFAULT_PERMC_SPEC, assemble_darcy, piecewise_constant_map, sample_grf

    records = []
    for s in sizes:
        n = _n_for(s, budget_s / repeats)
        config = DarcyConfig(n_samples=n, resolution=s, seed=seed)
        generate_sample(config, 0)  # warm up imports and caches
        matrices = [assemble_darcy(piecewise_constant_map(sample_grf(s, sample_rng(seed, i)))) for i in range(n)]
        pipeline, bare = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                generate_darcy(config, Path(tmp) / "bench.nc", workers=1, progress=False)
                pipeline.append((time.perf_counter() - t0) / n)
            t0 = time.perf_counter()
            for A, b in matrices:
                x = spla.splu(A, permc_spec=DEFAULT_PERMC_SPEC).solve(b)
            bare.append((time.perf_counter() - t0) / n)
            assert np.isfinite(x).all()
        rec = {
            "resolution": s,
            "n_samples": n,
            "repeats": repeats,
            "pipeline_s": min(pipeline),
            "bare_solve_s": min(bare),
            "ratio": min(pipeline) / min(bare),
        }
        log.info("%s", rec)
        records.append(rec)
    return records


def benchmark_orderings(sizes: tuple[int, ...] = (129, 257, 421), repeats: int = 3, seed: int = 0) -> list[dict]:
    """Time SuperLU's column orderings on benchmark matrices (median of ``repeats`` factorise-and-solve)."""
    import numpy as np
    import scipy.sparse.linalg as spla

    from mano_pde.data.generate import sample_rng
    from solvers import assemble_darcy, piecewise_constant_map, sample_grf

    records = []
    for s in sizes:
        A, b = assemble_darcy(piecewise_constant_map(sample_grf(s, sample_rng(seed, 0))))
        for spec in ("MMD_AT_PLUS_A", "COLAMD", "MMD_ATA", "NATURAL"):
            if spec == "NATURAL" and s > 257:
                continue  # minutes per solve: far off the others
            times, fill = [], 0
            for _ in range(repeats):
                t0 = time.perf_counter()
                lu = spla.splu(A, permc_spec=spec)
                lu.solve(b)
                times.append(time.perf_counter() - t0)
                fill = lu.L.nnz + lu.U.nnz
            records.append({"resolution": s, "permc_spec": spec, "time_s": float(np.median(times)), "lu_nnz": fill})
            log.info("%s", records[-1])
    return records


def benchmark_preset(name: str, workers: int, output: str | None = None) -> dict:
    """Wall time of generating a whole preset with ``workers`` processes."""
    from mano_pde.data import generate_darcy, get_preset

    config = get_preset(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(output) if output else Path(tmp) / f"{name}.nc"
        t0 = time.perf_counter()
        generate_darcy(config, path, workers=workers, overwrite=True, progress=True)
        wall = time.perf_counter() - t0
        size = path.stat().st_size
    return {
        "preset": name,
        "n_samples": config.n_samples,
        "resolution": config.resolution,
        "workers": workers,
        "wall_s": wall,
        "file_bytes": size,
    }


def _machine() -> dict[str, Any]:
    from mano_pde.provenance import machine_info, package_versions

    info = machine_info()
    versions = package_versions(("numpy", "scipy"))
    return {
        "cpu": info["cpu_model"],
        "cores": info["nproc"],
        "python": info["python"],
        "numpy": versions["numpy"],
        "scipy": versions["scipy"],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=list(_DEFAULT_SIZES), help="grid sizes")
    parser.add_argument("--budget", type=float, default=20.0, help="approximate seconds per size and method")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (fastest kept)")
    parser.add_argument("--orderings", action="store_true", help="also time SuperLU column orderings")
    parser.add_argument("--preset-run", metavar="PRESET", help="also time generating a whole preset")
    parser.add_argument("--workers", type=int, default=2, help="workers for --preset-run")
    parser.add_argument("--json", metavar="FILE", help="write all records as JSON")


def _check_args(args: argparse.Namespace) -> None:
    """Refuse options that cannot be benchmarked, before anything is generated (raises UserInputError)."""
    bad = [s for s in args.sizes if s < 3]
    if bad:
        raise UserInputError(f"--sizes takes grid sizes >= 3 (points per direction, boundary included), got {bad}")
    if not (args.budget > 0 and args.budget != float("inf")):
        raise UserInputError(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.repeats < 1 or args.workers < 1:
        raise UserInputError(f"--repeats and --workers must be >= 1, got {args.repeats} and {args.workers}")
    if args.preset_run is not None:
        from mano_pde.data import get_preset

        get_preset(args.preset_run)  # an unknown preset fails here, not after the other measurements


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    out: dict[str, Any] = {"machine": _machine()}
    rows = benchmark_pipeline(tuple(args.sizes), args.budget, args.repeats)
    out["pipeline"] = rows
    print(f"machine: {out['machine']}")
    print(f"\nfastest of {args.repeats} alternating repeats")
    print("| grid | samples | pipeline s/sample | bare splu s/sample | ratio |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['resolution']}² | {r['n_samples']} | {r['pipeline_s']:.4f} | {r['bare_solve_s']:.4f} "
            f"| {r['ratio']:.3f} |"
        )
    if args.orderings:
        out["orderings"] = benchmark_orderings()
        print("\n| grid | permc_spec | factorise+solve s | nnz(L+U) |\n|---|---|---|---|")
        for r in out["orderings"]:
            print(f"| {r['resolution']}² | {r['permc_spec']} | {r['time_s']:.3f} | {r['lu_nnz']} |")
    if args.preset_run:
        rec = benchmark_preset(args.preset_run, args.workers)
        out["preset"] = rec
        print(
            f"\npreset {rec['preset']}: {rec['n_samples']} samples at {rec['resolution']}² with "
            f"{rec['workers']} workers: {rec['wall_s']:.1f} s ({rec['wall_s'] / 60:.2f} min), "
            f"file {rec['file_bytes'] / 2**20:.0f} MiB"
        )
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(out, indent=2))
    return 0
