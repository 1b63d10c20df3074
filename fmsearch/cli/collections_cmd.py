"""``fmsearch collections``: what the store holds."""

from __future__ import annotations

from dataclasses import asdict

import click

from .common import domain_errors, echo_json, pass_settings

#: a listing does not wait long for an ingest in progress
LISTING_LOCK_TIMEOUT_S = 1.0


@click.command("collections")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per collection.")
@pass_settings
@domain_errors
def command(settings, as_json) -> None:
    """List collections with point count, vector size, method, fingerprint
    and the graph walk a class filter gets ("filtered ef": measured when a
    large collection was built; "-": the default walk, or a scan)."""
    from fmsearch.store.listing import summarize

    store = settings.store(lock_timeout=LISTING_LOCK_TIMEOUT_S)
    rows = summarize(store)
    if as_json:
        for row in rows:
            echo_json({k: v for k, v in asdict(row).items() if k != "in_use" or v is not None})
        return
    if not rows:
        click.echo(f"no collections in {store.location}")
        return
    click.echo(
        f"{'collection':<20} {'points':>7} {'dim':>5} {'method':<12} {'state':<10} {'filtered ef':>11} fingerprint"
    )
    for r in rows:
        if r.in_use is not None:
            click.echo(f"{r.collection:<20} {'?':>7} {'?':>5} {'?':<12} in use: {r.in_use}")
            continue
        state = "complete" if r.complete else "incomplete"
        ef = "-" if r.filtered_ef is None else str(r.filtered_ef)
        click.echo(f"{r.collection:<20} {r.points:>7} {r.dim:>5} {r.method:<12} {state:<10} {ef:>11} {r.fingerprint}")
