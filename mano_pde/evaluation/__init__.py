"""Evaluation: relative L2/H1 errors on the training grid and on finer grids (zero-shot), beside the resample
reference, with tables and plots."""

from .evaluate import evaluate, test_indices_for
from .metrics import interpolate_nodes, per_sample_rel_h1, per_sample_rel_l2, subsample_nodes
from .report import plot_error_vs_resolution, plot_predictions, results_table

__all__ = [
    "evaluate",
    "interpolate_nodes",
    "per_sample_rel_h1",
    "per_sample_rel_l2",
    "plot_error_vs_resolution",
    "plot_predictions",
    "results_table",
    "subsample_nodes",
    "test_indices_for",
]
