"""Benchmark commands (``mano-pde benchmark ...``); each module is import-light and exposes
``add_arguments(parser)`` and ``run(args)``."""

__all__: list[str] = []
