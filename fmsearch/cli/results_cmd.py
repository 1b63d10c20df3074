"""``fmsearch results``: README's results table from metrics.json files."""

from __future__ import annotations

import click

from .common import domain_errors


@click.command("results")
@click.argument("metrics_files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@domain_errors
def command(metrics_files) -> None:
    """Print a markdown table (one row per METRICS_FILES, seed figures beside)."""
    from search.report import results_table

    try:
        click.echo(results_table(list(metrics_files)))
    except (KeyError, ValueError) as err:
        raise click.ClickException(f"not an fmsearch metrics.json: {err}") from err
