"""The sub-commands of ``mano-pde`` behind :mod:`mano_pde.cli`: one module per group of commands.

* :mod:`mano_pde.commands.data` -- ``generate``, ``info`` and ``import`` (Darcy data files);
* :mod:`mano_pde.commands.train` -- ``train``, whose options come from the fields of
  :class:`~mano_pde.training.TrainConfig` (:mod:`mano_pde.commands.options`).

Each module adds its parsers with ``add_*(subparsers)`` and imports its back end only when the command runs,
so building the parser (``mano-pde --help``) imports neither torch nor xarray.
"""

from __future__ import annotations

from ..errors import UserInputError

__all__ = ["CLIError"]


class CLIError(UserInputError):
    """An error to report to the user in one line (exit status 2)."""
