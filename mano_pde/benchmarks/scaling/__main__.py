"""``python -m mano_pde.benchmarks.scaling``: the benchmark's command line, and the entry point of the measuring
child processes (``--_child-spec <json>``, see :func:`mano_pde.benchmarks.scaling.main`)."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
