"""The files a run reports in: the per-epoch ``log.csv`` and, with a validation split, ``final_metrics.json``.

``log.csv`` holds one row per finished epoch: :data:`LOG_FIELDS`, then the held-out error per training grid
(``val_rel_l2_{r}`` with a validation split, else ``test_rel_l2_{r}``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

__all__ = [
    "LOG_FIELDS",
    "FINAL_METRICS",
    "best_validation",
    "final_metrics",
    "format_log",
    "read_log",
    "validation_metrics",
]

LOG_FIELDS = ("epoch", "train_loss", "lr", "epoch_time_s")
#: Written after the last epoch of a run with a validation split (``n_val > 0``).
FINAL_METRICS = "final_metrics.json"


def best_validation(rows: list[dict], fields: list[str]) -> tuple[int, float]:
    """Epoch (1-based) and value of the lowest validation error in a log.

    The selection criterion is the mean of ``fields`` (``val_rel_l2_{r}`` for every training grid ``r``;
    with one grid, its error); ties go to the earliest epoch.

    Parameters
    ----------
    rows : list of dict
        Log rows with ``epoch`` and the ``fields``.
    fields : list of str
        Validation columns.

    Returns
    -------
    tuple
        ``(best_val_epoch, best_val_rel_l2)``.
    """
    if not rows:
        raise ValueError("no logged epochs")
    scores = [(float(np.mean([r[f] for f in fields])), int(r["epoch"])) for r in rows]
    value, epoch = min(scores, key=lambda t: (t[0], t[1]))
    return epoch, value


def final_metrics(
    val_data: str,
    rows: list[dict],
    val_fields: list[str],
    test: dict[str, float],
    val_idx: np.ndarray,
    test_idx: np.ndarray,
    test_path: str,
) -> dict:
    """Contents of ``final_metrics.json``: the one test score and the validation summary of a run.

    Parameters
    ----------
    val_data : str
        The file the validation samples come from (the training file).
    rows : list of dict
        The run's log rows (all epochs).
    val_fields : list of str
        Validation columns of the log.
    test : dict
        Test error per training grid (``test_rel_l2_{r}``), of the last epoch's weights.
    val_idx, test_idx : numpy.ndarray
        Validation and test sample indices.
    test_path : str
        The test file.
    """
    summary = validation_metrics(rows, val_fields)
    return {
        "epoch": summary.pop("epoch"),
        **test,
        **summary,
        "weights": "last epoch",
        "n_val": len(val_idx),
        "val_samples": [int(val_idx[0]), int(val_idx[-1]) + 1],
        "val_data": val_data,
        "n_test": len(test_idx),
        "test_samples": [int(test_idx[0]), int(test_idx[-1]) + 1],
        "test_data": test_path,
    }


def validation_metrics(rows: list[dict], val_fields: list[str]) -> dict:
    """The validation summary of a run's log: its last epoch, the last epoch's validation errors and the best
    epoch (:func:`best_validation`) — :func:`final_metrics` without the test score, also for runs whose test file
    is scored elsewhere (the seeded experiments' evaluation)."""
    best_epoch, best_value = best_validation(rows, val_fields)
    last = rows[-1]
    return {
        "epoch": int(last["epoch"]),
        **{f: float(last[f]) for f in val_fields},
        "best_val_epoch": best_epoch,
        "best_val_rel_l2": best_value,
        "best_val_criterion": "mean of " + ", ".join(val_fields) + " (lowest; earliest epoch on ties)",
    }


def format_log(rows: list[dict], fields: tuple[str, ...]) -> str:
    """``log.csv`` text of ``rows`` (a value a row lacks is an empty cell)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in fields})
    return buf.getvalue()


def read_log(path: Path, epochs: int | None = None) -> list[dict]:
    """Rows of a ``log.csv`` (``epoch`` as int, other cells as float, empty cells left out); ``[]`` without one.

    Parameters
    ----------
    path : Path
        The file.
    epochs : int, optional
        The number of finished epochs the log must hold, one row each, in order (``1 .. epochs``).

    Raises
    ------
    mano_pde.errors.UserInputError
        A cell that is not a number (naming the row and column), or (with ``epochs``) rows missing, repeated or
        out of order.
    """
    from ..errors import UserInputError

    if not path.is_file():
        rows = []
    else:
        rows = []
        with open(path, newline="") as fh:
            for line, r in enumerate(csv.DictReader(fh), start=2):
                row = {}
                for k, v in r.items():
                    if v in ("", None):
                        continue
                    try:
                        row[k] = int(v) if k == "epoch" else float(v)
                    except (TypeError, ValueError):
                        raise UserInputError(
                            f"{path}, line {line}, column {k}: {str(v)[:40]!r} is not a number; the log is damaged. "
                            "Resume the run (its verified training state restores the log) or train it again"
                        ) from None
                rows.append(row)
    if epochs is not None and [r.get("epoch") for r in rows[:epochs]] != list(range(1, epochs + 1)):
        found = [r.get("epoch") for r in rows]
        raise UserInputError(
            f"{path} should hold one row for each of the {epochs} finished epochs (1 to {epochs}), found the epochs "
            f"{found[:20]}{' ...' if len(found) > 20 else ''}: rows are missing or damaged. Restore the file, or "
            "train into a new -o folder"
        )
    return rows
