"""Scaling benchmark: time and peak memory of MANO vs global attention, window attention and FNO.

``mano-pde benchmark scaling`` (or ``python -m mano_pde.benchmarks.scaling``) measures, for every model
and square resolution ``n x n`` (32 ... 1024 by default), batch 1:

* **inference** -- one forward pass under ``torch.no_grad()`` in eval mode;
* **train** -- one optimisation step: forward, relative L2 loss (neuralop's ``LpLoss``), backward,
  Adam update.

Every (model, resolution, mode, variant) configuration runs in a **fresh Python process**, so allocator caches,
autotuning and the memory of earlier configurations cannot leak into its numbers. In that process the
model and input are built, one warm-up call is made, then ``repeats`` timed calls (the fastest is reported,
the median is kept in ``scaling.json``; fewer repeats when one call is slow, see ``--time-budget``). With
``--rounds R`` every configuration runs R times, interleaved with the other variants of the same size, and
the fastest call of all rounds counts (the machine may be shared: a load change then hits all variants).

Variants (columns): eager fp32 always; ``--bf16`` adds ``bf16`` (``torch.autocast(device, dtype=torch.bfloat16)``
around the forward pass, fp32 weights, gradients, optimizer state and loss), ``--compile`` adds
``fp32-compiled`` (``torch.compile(model)``), both flags add ``bf16-compiled``. The first call of a compiled
model compiles it: its compile time (first call minus the fastest call) is reported apart from the step time.

Arithmetic: for multipole-attention models (MANO) each record carries the analytic FLOP count of the call
(:mod:`.flops`: products only, a training step = forward + the backward's two products per forward product),
so the report gives the achieved GFLOP/s; beside it, a child process measures this machine's
``torch.matmul`` throughput for the shapes of MANO's main GEMMs at that size in fp32 and (with ``--bf16``)
bf16 (``--no-gemm`` skips it).

Peak memory
-----------
* CUDA: ``torch.cuda.max_memory_allocated()`` minus the memory allocated before the first call.
* CPU: torch has no peak-allocation counter on CPU and ``tracemalloc`` does not see its allocations, so
  the honest measurement is the operating system's: the process's peak resident set size (``VmHWM``,
  reset through ``/proc/self/clear_refs`` right before the first call; ``ru_maxrss`` if that is not
  permitted) minus its resident set size at that moment (``VmRSS``, after the model, the optimizer and
  the input exist). This is the extra physical memory the calls needed -- activations, autograd
  buffers, optimizer state created by the first step, workspace and allocator slack -- and excludes the
  interpreter, torch and the weights.

Allocator
---------
glibc's ``malloc`` serves allocations above its mmap threshold (at most 32 MB) with fresh ``mmap``
pages and returns them on ``free``, so every large tensor is page-faulted and zeroed again on every
call. A 64-channel activation is 4 MB at 128 x 128 (reused from the heap, no faults) but 67 MB at
512 x 512 (faulted on every call): time then grows faster than the work, for an allocator reason.
The measuring children apply the start-up settings of every ``mano-pde`` process
(:func:`mano_pde.process.configure_allocator`: ``mallopt`` so that freed memory is reused at every size),
so no flag is needed; ``--allocator PROFILE`` runs them with another profile of :mod:`mano_pde.process`
(``default`` = glibc's defaults; the older names ``system`` and ``heap`` mean ``default`` and ``no-mmap``).
The setting applies to every model alike; what each child applied is recorded in the outputs.

A configuration that exceeds the per-configuration ``--timeout`` is reported as ``timeout`` (and larger
resolutions of that model and mode are not attempted, nor are those whose time per call, extrapolated
from the two previous sizes, would exceed it); one that runs out of memory (the child's address space is
capped at ``--memory-limit-gb``) is reported as ``oom``. Neither stops the run.

Models are registry names, optionally labelled: ``fno-small=fno`` measures the registry's ``fno`` under
the label ``fno-small`` with the keywords ``--model-kwargs`` gives for that label.

Outputs (in ``--output-dir``): ``scaling.json`` (records + machine info, torch version, date, command),
``scaling.md`` (tables and the measured time and memory ratios) and ``scaling.png`` (log-log plot).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from mano_pde.process import configure_process

from .driver import (
    DEFAULT_MODEL_KWARGS,
    DEFAULT_MODELS,
    DEFAULT_RESOLUTIONS,
    DEFAULT_THREADS,
    machine_info,
    run_scaling_benchmark,
)
from .driver import _extrapolate as _extrapolate
from .driver import _parse_model as _parse_model
from .measure import _CHILD_FLAG, MODES, _child_main, measure_config, measure_gemm
from .report import format_report, plot, scaling_ratios

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_MODEL_KWARGS",
    "DEFAULT_RESOLUTIONS",
    "DEFAULT_THREADS",
    "MODES",
    "add_arguments",
    "format_report",
    "machine_info",
    "main",
    "measure_config",
    "measure_gemm",
    "plot",
    "run",
    "run_scaling_benchmark",
    "scaling_ratios",
]


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``benchmark scaling`` options to ``parser``."""
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        help="registry names to measure, optionally labelled as label=registry_name",
    )
    parser.add_argument(
        "--resolutions", nargs="+", type=int, default=list(DEFAULT_RESOLUTIONS), help="grid sides n (n x n)"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="what to measure")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up call")
    parser.add_argument(
        "--rounds", type=int, default=1, help="fresh processes per configuration, variants interleaved (fastest counts)"
    )
    parser.add_argument("--bf16", action="store_true", help="also measure bf16 autocast (fp32 weights)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile(model) (and both)")
    parser.add_argument(
        "--no-gemm", dest="gemm", action="store_false", help="skip the GEMM throughput of MANO's matmul shapes"
    )
    parser.add_argument(
        "--time-budget", type=float, default=60.0, help="seconds for the timed calls of one configuration"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration (fresh process)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch threads per measuring process")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--memory-limit-gb", type=float, default=None, help="address-space cap per configuration (default 90%% RAM)"
    )
    parser.add_argument(
        "--model-kwargs",
        type=json.loads,
        default=None,
        help='JSON per-model overrides, e.g. \'{"mano": {"hidden_channels": 32}}\'',
    )
    parser.add_argument(
        "--allocator",
        default=None,
        metavar="PROFILE",
        help="malloc profile of the measuring processes (mano_pde.process.PROFILES; system = glibc's defaults); "
        "default: the mano-pde start-up setting",
    )
    parser.add_argument("--output-dir", default="results/scaling", help="where scaling.{json,md,png} go")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; prints the markdown report. Returns the exit code."""
    command = getattr(args, "command_line", None) or " ".join(
        [Path(sys.argv[0]).name, *(shlex.quote(a) for a in sys.argv[1:])]
    )
    if not logging.getLogger().handlers:  # progress lines on stderr when the caller set up no logging
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    result = run_scaling_benchmark(
        models=args.models,
        resolutions=args.resolutions,
        modes=args.modes,
        batch_size=args.batch_size,
        repeats=args.repeats,
        rounds=args.rounds,
        time_budget=args.time_budget,
        timeout=args.timeout,
        threads=args.threads,
        device=args.device,
        memory_limit_gb=args.memory_limit_gb,
        model_kwargs=args.model_kwargs,
        bf16=args.bf16,
        compile=args.compile,
        gemm=args.gemm,
        allocator=args.allocator,
        output_dir=args.output_dir,
        command=command,
    )
    sys.stdout.write(result["markdown"])
    if args.output_dir:
        sys.stdout.write(f"\nWrote {Path(args.output_dir) / 'scaling.json'}, scaling.md, scaling.png\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mano_pde.benchmarks.scaling``: run the benchmark, or, given ``--_child-spec <json>`` (the
    child processes of :func:`run_scaling_benchmark`), measure that one configuration. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [_CHILD_FLAG]:
        return _child_main(argv[1])
    parser = argparse.ArgumentParser(prog="python -m mano_pde.benchmarks.scaling", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.command_line = "python -m mano_pde.benchmarks.scaling " + " ".join(shlex.quote(a) for a in argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    configure_process()  # a mano-pde process: the same start-up settings as the mano-pde command
    return run(args)
