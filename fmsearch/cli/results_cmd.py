"""``fmsearch results``: README's results table from metrics.json files."""

from __future__ import annotations

import click

from .common import domain_errors


@click.command("results")
@click.argument("metrics_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--modes", is_flag=True, help="The search-mode table instead: P@1, P@10, recall@10 vs exact, latency, bytes per vector.")
@domain_errors
def command(metrics_files, modes) -> None:
    """Print a markdown table (one row per METRICS_FILES, seed figures beside)."""
    from search.report import modes_table, results_table

    try:
        click.echo((modes_table if modes else results_table)(list(metrics_files)))
    except (KeyError, ValueError) as err:
        raise click.ClickException(f"not an fmsearch metrics.json: {err}") from err
