"""``fmsearch results``: README's results table from metrics.json files."""

from __future__ import annotations

import click

from .common import domain_errors


@click.command("results")
@click.argument("metrics_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--modes",
    is_flag=True,
    help="The search-mode table instead: P@1, P@10, recall@10 vs exact, latency, bytes per vector.",
)
@click.option("--per-class", is_flag=True, help="P@1 and P@10 per class, the runs side by side (weakest in bold).")
@click.option(
    "--bench",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --modes: take latency and disk bytes from this modes benchmark (bench-results/modes.json).",
)
@click.option(
    "--digits",
    type=click.IntRange(1, 6),
    default=3,
    show_default=True,
    help="Decimals of the quality figures in the results table.",
)
@domain_errors
def command(metrics_files, modes, per_class, bench, digits) -> None:
    """Print a markdown table (one row per METRICS_FILES, seed figures beside)."""
    from fmsearch.evaluation.results import modes_table, per_class_table, results_table

    try:
        if bench and not modes:
            raise click.UsageError("--bench goes with --modes")
        if modes and per_class:
            raise click.UsageError("--modes and --per-class are two different tables: give one")
        if per_class:
            click.echo(per_class_table(list(metrics_files), digits))
        else:
            click.echo(modes_table(list(metrics_files), bench) if modes else results_table(list(metrics_files), digits))
    except (KeyError, ValueError) as err:
        raise click.ClickException(f"not an fmsearch metrics.json (or modes.json): {err}") from err
