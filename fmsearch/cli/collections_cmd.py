"""``fmsearch collections``: what the store holds."""

from __future__ import annotations

import click

from .common import domain_errors, echo_json, pass_settings


@click.command("collections")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per collection.")
@pass_settings
@domain_errors
def command(settings, as_json) -> None:
    """List collections with point count, vector size, method and fingerprint."""
    from fmsearch.errors import StoreLockedError

    store = settings.store()
    if hasattr(store, "lock_timeout"):  # a listing does not wait long for an ingest in progress
        store.lock_timeout = 1.0
    rows = []
    for name in store.collections():
        try:
            info = store.info(name)
        except StoreLockedError as err:
            rows.append({"collection": name, "points": None, "dim": None, "distance": None, "method": "?",
                         "fingerprint": "?", "complete": None, "in_use": str(err)})
            continue
        meta = info.metadata
        rows.append(
            {
                "collection": name,
                "points": info.points,
                "dim": info.dim,
                "distance": info.distance,
                "method": meta.get("method", "?"),
                "fingerprint": meta.get("fingerprint", "?"),
                "complete": bool(meta.get("complete", False)),
            }
        )
    if as_json:
        for row in rows:
            echo_json(row)
        return
    if not rows:
        click.echo(f"no collections in {store.location}")
        return
    click.echo(f"{'collection':<20} {'points':>7} {'dim':>5} {'method':<12} {'state':<10} fingerprint")
    for r in rows:
        if r["complete"] is None:
            click.echo(f"{r['collection']:<20} {'?':>7} {'?':>5} {'?':<12} in use: {r['in_use']}")
            continue
        state = "complete" if r["complete"] else "incomplete"
        click.echo(
            f"{r['collection']:<20} {r['points']:>7} {r['dim']:>5} {r['method']:<12} {state:<10} {r['fingerprint']}"
        )
