"""The exception type for user mistakes, raised at the package's boundaries.

Policy
------
- Code that checks what a user gave it (CLI options, configuration objects, data files, output paths) raises
  :class:`UserInputError` (or a subclass such as :class:`mano_pde.data.DarcyDataError`) with a message that
  names the problem and the fix. The ``mano-pde`` command prints that message on one line and exits with
  status 2.
- Every other exception is a bug or an environment failure and keeps its traceback: the CLI does not catch
  plain :class:`ValueError` / :class:`TypeError`.
- The numpy/scipy :mod:`solvers` package stays independent of ``mano_pde``: its functions raise plain
  ``ValueError`` / ``TypeError`` with clear messages. ``mano_pde`` validates its own inputs before calling
  the solvers, and converts the solver's input errors into :class:`UserInputError` where a user's parameter
  can cause them (e.g. a permeability contrast beyond the solver's range, see
  :func:`mano_pde.data.generate.generate_sample`).

This module imports nothing heavy, so ``mano_pde.UserInputError`` is cheap.
"""

from __future__ import annotations

__all__ = ["UserInputError"]


class UserInputError(ValueError):
    """A user mistake, detected at one of the package's boundaries.

    Raised for invalid options, configurations, data files and output paths. The ``mano-pde`` command
    prints its message on one line (``mano-pde COMMAND: error: MESSAGE``) and exits with status 2. It
    subclasses :class:`ValueError`, so ``except ValueError`` keeps catching it.
    """
