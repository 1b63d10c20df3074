"""Evaluation: metrics, category and near-duplicate evaluation, reports,
plots and benchmarks."""

#: where an evaluation writes when no output folder is named
RESULTS_DIR = "eval-results"
