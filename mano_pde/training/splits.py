"""Which samples a run trains, validates and tests on, and the batch order of an epoch.

Training: the first ``n_train`` samples of the training file; validation: the next ``n_val`` of the same file;
test: the last ``n_test`` samples of the test file. The batch order of epoch ``e`` is a pure function of the
generator the trainer seeds from ``(seed, e)``, so a resumed or data-parallel run draws the same batches.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserInputError

__all__ = ["split_indices", "split_train_val_test", "epoch_batches"]


def split_indices(n_file: int, n_train: int, n_test: int, same_file: bool) -> tuple[np.ndarray, np.ndarray]:
    """Training indices (the first ``n_train``) and held-out indices (the last ``n_test``).

    Raises
    ------
    mano_pde.errors.UserInputError
        If the file is too small or, for one file, the two blocks would overlap.
    """
    if n_train > n_file:
        raise UserInputError(f"--n-train {n_train} but the training file holds only {n_file} samples")
    if n_test > n_file:
        raise UserInputError(f"--n-test {n_test} but the held-out file holds only {n_file} samples; lower --n-test")
    train = np.arange(n_train)
    test = np.arange(n_file - n_test, n_file)
    if same_file and n_train + n_test > n_file:
        raise UserInputError(
            f"training on the first {n_train} and holding out the last {n_test} of {n_file} samples of the same "
            f"sample sequence would overlap; lower --n-train/--n-test (n_train + n_test <= {n_file}) or use "
            "held-out data generated with another seed"
        )
    return train, test


def split_train_val_test(
    n_file: int, n_test_file: int, n_train: int, n_val: int, n_test: int, same_stream: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training, validation and test indices of a run.

    Training: the first ``n_train`` samples of the training file; validation: the next ``n_val`` of the
    same file, ``[n_train, n_train + n_val)``; test: the last ``n_test`` samples of the test file. When the
    two files hold the same sample sequence (``same_stream``: the same file, or files generated with the
    same seed and parameters) the test block must lie after the validation block.

    Parameters
    ----------
    n_file, n_test_file : int
        Samples in the training and in the test file.
    n_train, n_val, n_test : int
        Block sizes (``n_train``: the largest per-resolution count; ``n_val`` may be 0).
    same_stream : bool
        Whether sample ``i`` is the same in both files.

    Returns
    -------
    tuple of numpy.ndarray
        ``(train, val, test)`` indices; ``val`` is empty for ``n_val == 0``.

    Raises
    ------
    mano_pde.errors.UserInputError
        If a file is too small for its blocks or the blocks would overlap; the message names the numbers
        and the fix.
    """
    if n_val < 0:
        raise UserInputError(f"--n-val must be >= 0, got {n_val}")
    train, _ = split_indices(n_file, n_train, 0, False)
    if not n_val:  # no validation split: exactly the checks (and messages) of runs without one
        _, test = split_indices(n_test_file, n_train if same_stream else 0, n_test, same_stream)
        return train, np.arange(0), test
    if n_train + n_val > n_file:
        raise UserInputError(
            f"--n-train {n_train} + --n-val {n_val} = {n_train + n_val} samples, but the training file holds only "
            f"{n_file} (validation samples are the {n_val} right after the training block); lower --n-val or "
            f"--n-train, or generate a training file with at least {n_train + n_val} samples"
        )
    if n_test > n_test_file:
        raise UserInputError(
            f"--n-test {n_test} but the held-out file holds only {n_test_file} samples; lower --n-test"
        )
    if same_stream and n_train + n_val + n_test > n_test_file:
        raise UserInputError(
            f"training on the first {n_train}, validating on the next {n_val} (samples {n_train}-"
            f"{n_train + n_val - 1}) and testing on the last {n_test} of {n_test_file} samples of the same sample "
            f"sequence would overlap; lower --n-train/--n-val/--n-test (n_train + n_val + n_test <= "
            f"{n_test_file}) or use held-out data generated with another seed (--test-data)"
        )
    return train, np.arange(n_train, n_train + n_val), np.arange(n_test_file - n_test, n_test_file)


def epoch_batches(sizes: list[int], batch_size: int, generator: torch.Generator) -> list[tuple[int, torch.Tensor]]:
    """Shuffled batches ``(dataset index, sample indices)`` of one epoch, each within one dataset (one grid).

    Parameters
    ----------
    sizes : list of int
        Samples per training dataset (one per training grid).
    batch_size : int
        The global batch size; the last batch of a dataset may be shorter.
    generator : torch.Generator
        Seeded by the trainer from ``(seed, epoch)``: the order depends on nothing else.

    Returns
    -------
    list of tuple
        ``(dataset index, sample indices)`` in training order.
    """
    batches = []
    for d, n in enumerate(sizes):
        perm = torch.randperm(n, generator=generator)
        batches.extend((d, perm[k : k + batch_size]) for k in range(0, n, batch_size))
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]
