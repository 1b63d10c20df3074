"""Evaluation: metrics, category and near-duplicate evaluation, reports,
plots and benchmarks."""
