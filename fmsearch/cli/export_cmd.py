"""``fmsearch export``: write the ONNX export of trained artifacts."""

from __future__ import annotations

import click

from fmsearch.models.registry import SHIPPED

from .common import data_dir_option, domain_errors


@click.command("export")
@click.option(
    "--method",
    "-m",
    type=click.Choice([*SHIPPED, "all"]),
    default="all",
    show_default=True,
    help="Which trained method's artifact to export.",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="The .keras artifact to export [default: the shipped one of each method].",
)
@data_dir_option
@domain_errors
def command(method, weights, data_dir) -> None:
    """Export trained artifacts to ONNX: writes <name>.onnx beside each .keras
    file and records it in the model card (its SHA-256, the opset, the
    versions, and its largest difference from Keras on the first 1,024 test
    images). Needs the training extra; running the export does not."""
    from fmsearch.models.artifacts import default_artifact, read_card
    from fmsearch.models.export import export_onnx

    if weights is not None and method == "all":
        raise click.UsageError("--weights needs a single --method")
    for name in SHIPPED if method == "all" else (method,):
        artifact = weights or default_artifact(name)
        made_by = read_card(artifact).get("method")
        if made_by != name:
            raise click.UsageError(f"{artifact} is a {made_by} artifact (its card says so), not {name}")
        command = f"fmsearch export --method {name}" + (f" --weights {weights}" if weights else "")
        card = export_onnx(artifact, data_dir, command=command)
        onnx = card["onnx"]
        click.echo(
            f"wrote {onnx['file']} beside {artifact} (sha256 {onnx['sha256'][:16]}..., opset {onnx['opset']}, "
            f"max |diff| from Keras {onnx['max_abs_diff_vs_keras']:.2g})"
        )
